// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "inference",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "inference", targets: ["inference"]),
        // The libraries another package can depend on (Examples/RunModel does, by path; none uses unsafe flags).
        .library(name: "InferenceTensor", targets: ["InferenceTensor"]),
        .library(name: "InferenceGraph", targets: ["InferenceGraph"]),
        .library(name: "InferenceRuntime", targets: ["InferenceRuntime"]),
        .library(name: "ONNXImport", targets: ["ONNXImport"]),
        .library(name: "CPUBackend", targets: ["CPUBackend"]),
        .library(name: "GPUBackend", targets: ["GPUBackend"]),
        .library(name: "InferenceBench", targets: ["InferenceBench"]),
        // Counts heap allocations by replacing malloc: for the allocation tests and benchmarks/ (never link it into
        // a program that should allocate normally).
        .library(name: "CMallocCounter", targets: ["CMallocCounter"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
    ],
    targets: [
        // Tensors, dtypes and the NumPy file formats. Depends on nothing of ours.
        .target(name: "InferenceTensor", dependencies: ["SystemZlib"]),
        // The system's zlib (deflate for .npz archives; Debian: zlib1g-dev).
        .systemLibrary(name: "SystemZlib", providers: [.apt(["zlib1g-dev"])]),
        // Generated swift-protobuf code for onnx.proto only (scripts/generate-onnx-proto); never edited by hand.
        .target(
            name: "ONNXProto",
            dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")],
            exclude: ["Proto"]
        ),
        // ModelProto → Graph: the only module that sees ONNXProto.
        .target(name: "ONNXImport", dependencies: ["ONNXProto", "InferenceGraph", "InferenceTensor"]),
        // The intermediate form: graph, nodes, attributes, shape inference and planning.
        .target(name: "InferenceGraph", dependencies: ["InferenceTensor"]),
        // Backend and Kernel protocols, kernel registry, Session, timings.
        .target(name: "InferenceRuntime", dependencies: ["InferenceGraph", "InferenceTensor"]),
        // C micro-kernels with run-time CPU-feature dispatch. Release builds compile them at SwiftPM's -O2: the
        // former unsafeFlags(["-O3"]) measured no difference (MobileNetV2, ResNet-50, ViT-S, task clock of 20 runs,
        // alternating binaries) and kept the library from being a versioned dependency of another package.
        .target(name: "CKernels"),
        .target(name: "CPUBackend", dependencies: ["InferenceRuntime", "CKernels"]),
        // The GPU kernel source (kernels/*.cl, real C for OpenCL and CUDA) and its generated PTX, embedded into the
        // binary at build time (#embed), so a static binary needs no file beside it.
        .target(name: "GPUKernelText", exclude: ["kernels"]),
        // CUDA and OpenCL backends: runtimes loaded at run time (dlopen), one kernel table for both, NVML energy.
        .target(name: "GPUBackend", dependencies: ["InferenceRuntime", "InferenceGraph", "InferenceTensor", "GPUKernelText"]),
        // Models built in code: the embedded default and synthetic benchmark models.
        .target(name: "BuiltinModels", dependencies: ["InferenceGraph", "InferenceTensor"]),
        // Measurement: the timing loop, statistics, confidence, cold start, energy, cost, parity, profiles, load generation.
        .target(name: "InferenceBench", dependencies: ["InferenceRuntime"]),
        // `inference serve`: the Open Inference Protocol over HTTP (Hummingbird), dynamic batching, metrics.
        .target(
            name: "InferenceServer",
            dependencies: [
                "InferenceTensor", "InferenceGraph", "InferenceRuntime", "InferenceBench",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ]
        ),
        .executableTarget(
            name: "inference",
            dependencies: [
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                "InferenceTensor", "InferenceGraph", "InferenceRuntime", "CPUBackend", "GPUBackend",
                "BuiltinModels", "InferenceBench", "ONNXImport", "InferenceServer",
            ],
            // Release binaries carry the Swift runtime and Foundation: no dynamic linking of a dozen Swift libraries
            // at every start (7 ms instead of 12 from process start to prediction; benchmarks/cold-start).
            linkerSettings: [
                .unsafeFlags(
                    ["-static-stdlib", "-use-ld=lld", "-l_FoundationCShims", "-l_FoundationCollections", "-l_FoundationICU", "-lCoreFoundation"], .when(configuration: .release))
            ]
        ),
        .target(
            name: "InferenceTestSupport",
            dependencies: ["InferenceTensor", "InferenceGraph", "InferenceRuntime", "ONNXImport"]),
        // Counts heap allocations (replaces malloc & co. in the process that links it): tests and benchmarks only.
        .target(name: "CMallocCounter"),
        .testTarget(
            name: "InferenceTensorTests",
            dependencies: ["InferenceTensor", "InferenceTestSupport"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "InferenceGraphTests",
            dependencies: ["InferenceGraph", "InferenceTensor", "BuiltinModels", "CPUBackend"]
        ),
        .testTarget(
            name: "CPUBackendTests",
            dependencies: [
                "CPUBackend", "InferenceRuntime", "InferenceGraph", "InferenceTensor", "BuiltinModels",
                "InferenceTestSupport", "CKernels",
            ]
        ),
        .testTarget(
            name: "ONNXImportTests",
            dependencies: [
                "ONNXImport", "ONNXProto", "CPUBackend", "InferenceRuntime", "InferenceGraph", "InferenceTensor",
                "InferenceTestSupport", "InferenceBench",
            ],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "GPUBackendTests",
            dependencies: [
                "GPUBackend", "CPUBackend", "InferenceRuntime", "InferenceGraph", "InferenceTensor", "BuiltinModels", "ONNXImport",
                "InferenceTestSupport",
            ]
        ),
        .testTarget(name: "InferenceBenchTests", dependencies: ["InferenceBench", "InferenceRuntime", "InferenceTensor"]),
        .testTarget(
            name: "AllocationTests",
            dependencies: [
                "CMallocCounter", "CPUBackend", "InferenceRuntime", "InferenceTensor", "BuiltinModels", "ONNXImport",
                "InferenceGraph", "InferenceTestSupport",
            ]
        ),
        .testTarget(name: "inferenceTests", dependencies: ["InferenceTensor", "InferenceTestSupport"]),
    ]
)
