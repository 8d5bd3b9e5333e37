"""Structural checks of deploy/kserve/*.yaml against the facts of KServe's published API (cited in
docs/serving.md): ServingRuntime in serving.kserve.io/v1alpha1 with supportedModelFormats, protocolVersions and a
container named kserve-container; InferenceService in serving.kserve.io/v1beta1 whose predictor.model names a
format the runtime supports, the runtime, the v2 protocol and a storageUri; scaleMetric one of concurrency, rps,
cpu, memory. Every `--option` the manifests pass must be one `inference serve --help` lists.

    manifest_checks.py ROOT BINARY
"""
import glob
import os
import re
import subprocess
import sys

import yaml

ROOT, BINARY = sys.argv[1], sys.argv[2]


def fail(message):
    print("FAIL: " + message)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


help_text = subprocess.run([BINARY, "serve", "--help"], capture_output=True, text=True).stdout
options = set(re.findall(r"(--[a-z][a-z-]*)", help_text))
check("--max-batch" in options, f"serve --help lists no options: {help_text[:200]}")

documents = {}
for path in sorted(glob.glob(os.path.join(ROOT, "deploy", "kserve", "*.yaml"))):
    with open(path) as f:
        documents[os.path.basename(path)] = yaml.safe_load(f)
check("servingruntime.yaml" in documents, "no servingruntime.yaml")

runtime = documents["servingruntime.yaml"]
check(runtime["apiVersion"] == "serving.kserve.io/v1alpha1", "ServingRuntime apiVersion")
check(runtime["kind"] == "ServingRuntime", "ServingRuntime kind")
formats = [f["name"] for f in runtime["spec"]["supportedModelFormats"]]
check("onnx" in formats, f"supported formats {formats}")
check("v2" in runtime["spec"]["protocolVersions"], "protocolVersions lacks v2")
container = runtime["spec"]["containers"][0]
check(container["name"] == "kserve-container", "the runtime's container must be named kserve-container")
args = container["args"]
check(args[0] == "serve", f"args start with {args[0]}")
port = args[args.index("--port") + 1]
check(container["ports"][0]["containerPort"] == int(port), "containerPort differs from --port")
check(args[args.index("--host") + 1] == "0.0.0.0", "a pod must listen beyond loopback")
for probe in ("readinessProbe", "livenessProbe"):
    check(container[probe]["httpGet"]["path"] in ("/v2/health/ready", "/v2/health/live"), f"{probe} path")
    check(container[probe]["httpGet"]["port"] == int(port), f"{probe} port")

services = [d for name, d in documents.items() if name.startswith("inferenceservice")]
check(services, "no InferenceService manifest")
for service in services:
    name = service["metadata"]["name"]
    check(service["apiVersion"] == "serving.kserve.io/v1beta1", f"{name}: apiVersion")
    check(service["kind"] == "InferenceService", f"{name}: kind")
    predictor = service["spec"]["predictor"]
    model = predictor["model"]
    check(model["modelFormat"]["name"] in formats, f"{name}: format {model['modelFormat']['name']}")
    check(model["runtime"] == runtime["metadata"]["name"], f"{name}: runtime {model['runtime']}")
    check(model["protocolVersion"] == "v2", f"{name}: protocolVersion")
    check("://" in model["storageUri"], f"{name}: storageUri")
    check(predictor["scaleMetric"] in ("concurrency", "rps", "cpu", "memory"), f"{name}: scaleMetric")
    check(1 <= predictor["minReplicas"] <= predictor["maxReplicas"], f"{name}: replicas")
    args = args + model.get("args", [])

for arg in args:
    if isinstance(arg, str) and arg.startswith("--"):
        check(arg in options, f"the manifests pass {arg}, which `inference serve` does not take")
print(f"manifests: ok ({len(documents)} files; every option is one `inference serve` takes)")
