"""The server's overhead per request at batch 1 against the in-process run, on loopback with keep-alive.

    benchmarks/serve-overhead.py [--binary .build/release/inference] [--requests 3000]

Starts `inference serve` with builtin:linear (so the model's own time is a microsecond), then measures:
in process, the CLI's warm p50 (`--json`); over HTTP, the p50 round trip of one keep-alive connection sending
the same sample as JSON, and as Triton's binary extension; inside the server, from /metrics, the mean time a
request spent in the server minus the mean time its batch computed.
"""
import argparse
import http.client
import json
import os
import statistics
import subprocess
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def metric(text, name):
    return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith(name + "{"))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build", "release", "inference"))
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    sample = os.path.join(ROOT, "data", "sample1.npy")
    report = json.loads(subprocess.run([args.binary, "--input", sample, "--json", "--repeat", "2000"],
                                       capture_output=True, text=True, check=True).stdout)
    in_process = report["timings_ms"]["warm_p50"] * 1000
    server = subprocess.Popen([args.binary, "serve", "--port", "0", "--threads", "1"], stderr=subprocess.PIPE,
                              text=True)
    line = server.stderr.readline()
    port = int(line.split("http://127.0.0.1:")[1].split(" ")[0])
    x = np.load(sample).astype(np.float32).reshape(1, 10)
    json_body = json.dumps({"inputs": [{"name": "input", "shape": [1, 10], "datatype": "FP32",
                                        "data": x.ravel().tolist()}]}).encode()
    header = json.dumps({"inputs": [{"name": "input", "shape": [1, 10], "datatype": "FP32",
                                     "parameters": {"binary_data_size": 40}}],
                         "outputs": [{"name": "probability", "parameters": {"binary_data": True}}]}).encode()
    binary_body = header + x.tobytes()
    results = {}
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port)
        for name, body, headers in (("JSON", json_body, {}),
                                    ("binary", binary_body, {"Inference-Header-Content-Length": str(len(header))})):
            times = []
            for i in range(args.requests + 200):
                start = time.perf_counter_ns()
                connection.request("POST", "/v2/models/linear/infer", body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                if i >= 200:
                    times.append((time.perf_counter_ns() - start) / 1000)
                assert response.status == 200
            results[name] = statistics.median(times)
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
        requests = metric(text, "nv_inference_request_success")
        inside = (metric(text, "nv_inference_request_duration_us")
                  - metric(text, "nv_inference_compute_infer_duration_us")) / requests
    finally:
        server.terminate()
        server.wait()
    print(f"builtin:linear at batch 1, {args.requests} requests per form, one keep-alive connection on 127.0.0.1")
    print(f"  in process (CLI warm p50):               {in_process:8.1f} us")
    for name, value in results.items():
        print(f"  HTTP round trip p50, {name:6s} (client incl.): {value:8.1f} us  (+{value - in_process:.1f} us)")
    print(f"  inside the server, mean (request - compute): {inside:6.1f} us")


if __name__ == "__main__":
    main()
