// swift-tools-version: 6.0
// A package of its own that uses inference's libraries the way another project would: by a package dependency
// (here by path; a released version works the same way). scripts/test builds and runs it.
import PackageDescription

let package = Package(
    name: "RunModel",
    platforms: [.macOS(.v13)],
    dependencies: [.package(name: "inference", path: "../..")],
    targets: [
        .executableTarget(
            name: "RunModel",
            dependencies: [
                .product(name: "ONNXImport", package: "inference"),
                .product(name: "InferenceRuntime", package: "inference"),
                .product(name: "InferenceTensor", package: "inference"),
                .product(name: "CPUBackend", package: "inference"),
            ]
        )
    ]
)
