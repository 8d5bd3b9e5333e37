// swift-tools-version: 6.0
// Fuzz targets, apart from the product so that `swift build` of the main package needs no fuzzer runtime.
// Build and run with scripts/fuzz (it passes -sanitize=fuzzer).
import PackageDescription

let package = Package(
    name: "InferenceFuzz",
    dependencies: [.package(name: "inference", path: "..")],
    targets: [
        .executableTarget(
            name: "ONNXFuzz",
            dependencies: [
                .product(name: "ONNXImport", package: "inference"), .product(name: "CPUBackend", package: "inference"),
                .product(name: "InferenceRuntime", package: "inference"),
            ],
            linkerSettings: [.unsafeFlags(["-use-ld=lld"])]
        ),
        .executableTarget(
            name: "NPYFuzz",
            dependencies: [.product(name: "InferenceTensor", package: "inference")],
            // gold cannot link the fuzzer runtime with SwiftPM's renamed main; lld can.
            linkerSettings: [.unsafeFlags(["-use-ld=lld"])]
        ),
    ]
)
