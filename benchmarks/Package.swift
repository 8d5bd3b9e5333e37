// swift-tools-version: 6.0
// The benchmark harness's Swift side, apart from the product (the main package has no benchmark dependency).
// benchmarks/run builds it and drives it next to onnxruntime.
import PackageDescription

let package = Package(
    name: "InferenceBenchmarks",
    dependencies: [.package(name: "inference", path: "..")],
    targets: [
        .executableTarget(
            name: "runtime-bench",
            dependencies: [
                .product(name: "ONNXImport", package: "inference"), .product(name: "CPUBackend", package: "inference"),
                .product(name: "InferenceRuntime", package: "inference"),
                .product(name: "InferenceBench", package: "inference"),
                .product(name: "InferenceTensor", package: "inference"),
                .product(name: "CMallocCounter", package: "inference"),
            ]
        )
    ]
)
