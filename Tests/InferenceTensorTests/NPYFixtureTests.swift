import Foundation
import InferenceTensor
import Testing

/// Files written by numpy itself (scripts/make-npy-fixtures.py) must load bit-exactly.
struct NPYFixtureTests {
    struct Entry: Decodable, CustomTestStringConvertible, Sendable {
        var file: String
        var member: String?
        var dtype: String
        var shape: [Int]
        var hex: String

        var testDescription: String { member.map { "\(file):\($0)" } ?? file }
    }

    struct Manifest: Decodable {
        var numpy: String
        var entries: [Entry]
    }

    static let directory = Bundle.module.bundleURL.appendingPathComponent("Fixtures/npy")

    static let entries: [Entry] = {
        let url = directory.appendingPathComponent("manifest.json")
        guard let data = try? Data(contentsOf: url), let manifest = try? JSONDecoder().decode(Manifest.self, from: data)
        else {
            return []
        }
        return manifest.entries
    }()

    @Test func manifestIsPresent() {
        #expect(Self.entries.count > 50)
    }

    @Test(arguments: entries)
    func loadsBitExactly(_ entry: Entry) throws {
        let path = Self.directory.appendingPathComponent(entry.file).path
        let arrays = try NumPyFile.readArrays(path: path)
        let tensor: Tensor
        if let member = entry.member {
            tensor = try #require(arrays.first { $0.name == member }?.tensor, "no member \(member)")
        } else {
            #expect(arrays.count == 1)
            tensor = try #require(arrays.first?.tensor)
        }
        #expect(tensor.dtype.rawValue == entry.dtype)
        #expect(tensor.shape.dimensions == entry.shape)
        let hex = tensor.withUnsafeBytes { $0.map { String(format: "%02x", $0) }.joined() }
        #expect(hex == entry.hex)
    }

    @Test func npzKeepsArchiveOrderAndNames() throws {
        let arrays = try NumPyFile.readNPZ(path: Self.directory.appendingPathComponent("deflated.npz").path)
        #expect(arrays.map(\.name) == ["a", "b", "c"])
        #expect(arrays[0].tensor.shape == [4, 10])
    }
}
