/// The runtimes a device can be reached through.
public enum DeviceKind: String, Sendable, Hashable, Codable {
    case cpu, cuda, opencl
}

/// One device: a runtime and an index within it (`cpu`, `cuda:0`, `opencl:1`).
public struct DeviceID: Hashable, Sendable, CustomStringConvertible {
    public var kind: DeviceKind
    public var index: Int

    public init(_ kind: DeviceKind, _ index: Int = 0) {
        self.kind = kind
        self.index = index
    }

    public static let cpu = DeviceID(.cpu)

    public var description: String { kind == .cpu ? "cpu" : "\(kind.rawValue):\(index)" }

    /// How the seed output names the device: `CPU` or `GPU`.
    public var displayClass: String { kind == .cpu ? "CPU" : "GPU" }
}
