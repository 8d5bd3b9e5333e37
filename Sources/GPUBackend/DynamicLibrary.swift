#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A shared library opened with dlopen. Never closed: GPU runtimes do not support being unloaded.
struct DynamicLibrary: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer
    let name: String

    /// Opens the first of `names` the dynamic loader finds (it searches LD_LIBRARY_PATH, the ld.so cache
    /// and the default directories).
    /// - Throws: `GPURuntimeError.libraryNotFound` with each name tried and the loader's message.
    static func open(_ names: [String]) throws(GPURuntimeError) -> DynamicLibrary {
        var firstMessage: String?
        for name in names {
            if let handle = dlopen(name, RTLD_NOW | RTLD_LOCAL) { return DynamicLibrary(handle: handle, name: name) }
            let message = dlerror().map { String(cString: $0) } ?? "not found"
            if firstMessage == nil { firstMessage = message }
        }
        throw .libraryNotFound(names: names, detail: firstMessage ?? "not found")
    }

    /// Resolves every symbol in `names`; reports all missing ones in one error.
    func resolve(_ names: [String]) throws(GPURuntimeError) -> [String: UnsafeMutableRawPointer] {
        var found: [String: UnsafeMutableRawPointer] = [:]
        var missing: [String] = []
        for symbol in names {
            if let address = dlsym(handle, symbol) { found[symbol] = address } else { missing.append(symbol) }
        }
        guard missing.isEmpty else { throw .missingSymbols(library: name, symbols: missing) }
        return found
    }
}

/// Why a GPU runtime could not be used.
public enum GPURuntimeError: Error, Equatable, CustomStringConvertible {
    case libraryNotFound(names: [String], detail: String)
    case missingSymbols(library: String, symbols: [String])
    case call(function: String, code: Int, message: String)

    public var description: String {
        switch self {
        case .libraryNotFound(let names, let detail):
            "\(names[0]) not found by the dynamic loader (\(detail))"
        case .missingSymbols(let library, let symbols):
            "\(library) lacks \(symbols.joined(separator: ", ")) (driver too old?)"
        case .call(let function, let code, let message): "\(function) failed: \(message) (\(code))"
        }
    }
}
