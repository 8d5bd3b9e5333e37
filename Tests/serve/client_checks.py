"""Checks `inference serve` from the outside, as users would: the Triton HTTP client (tritonclient[http]) and raw
HTTP for what a client library would never send. Run by Tests/inferenceTests/ServeTests.swift against a server it
started on 127.0.0.1:

    client_checks.py URL BINARY WORKDIR {protocol|malformed|load N M}

Every check compares outputs with the CLI's own output for the same input (`inference --json`). Exits non-zero
with a message on the first failure; prints one line per check group.
"""
import http.client
import json
import os
import subprocess
import sys
import threading
import time
import urllib.parse

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

URL, BINARY, WORK = sys.argv[1], sys.argv[2], sys.argv[3]
HOST = urllib.parse.urlparse(URL).netloc if "//" in URL else URL


def fail(message):
    print("FAIL: " + message)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


def cli_outputs(model, x):
    """The CLI's outputs for one input (the reference every server answer must equal)."""
    path = os.path.join(WORK, f"ref-{os.getpid()}-{threading.get_ident()}.npy")
    np.save(path, x)
    result = subprocess.run([BINARY, "--model", model, "--input", path, "--json", "--repeat", "1", "--warmup", "0"],
                            capture_output=True, text=True)
    check(result.returncode == 0, f"CLI failed: {result.stderr}")
    report = json.loads(result.stdout)
    return {o["name"]: np.array(o["values"], dtype=np.float32).reshape(o["shape"]) for o in report["outputs"]}


def raw(method, path, body=b"", headers=None):
    connection = http.client.HTTPConnection(HOST, timeout=30)
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, data, dict(response.getheaders())


def protocol():
    client = httpclient.InferenceServerClient(url=HOST)
    check(client.is_server_live(), "server not live")
    check(client.is_server_ready(), "server not ready")
    check(client.is_model_ready("linear"), "linear not ready")
    check(not client.is_model_ready("nope"), "an unknown model reported ready")
    server = client.get_server_metadata()
    check(server["name"] == "inference" and "binary_tensor_data" in server["extensions"], f"server metadata {server}")
    meta = client.get_model_metadata("mlp")
    check(meta["inputs"][0]["datatype"] == "FP32" and meta["inputs"][0]["shape"] == [-1, 784], f"mlp metadata {meta}")
    check(meta["outputs"][0]["shape"] == [-1, 10], f"mlp outputs {meta['outputs']}")

    rng = np.random.default_rng(3)
    for binary in (True, False):
        for model, width in (("linear", 10), ("mlp", 784)):
            x = rng.random((3, width), dtype=np.float32)
            name = meta["inputs"][0]["name"] if model == "mlp" else client.get_model_metadata(model)["inputs"][0]["name"]
            inp = httpclient.InferInput(name, list(x.shape), "FP32")
            inp.set_data_from_numpy(x, binary_data=binary)
            out_name = client.get_model_metadata(model)["outputs"][0]["name"]
            result = client.infer(model, [inp], outputs=[httpclient.InferRequestedOutput(out_name, binary_data=binary)],
                                  request_id="r-1")
            got = result.as_numpy(out_name)
            want = cli_outputs(f"builtin:{model}", x)[out_name]
            check(got is not None and got.shape == want.shape, f"{model}: shape {None if got is None else got.shape}")
            check(np.array_equal(got, want), f"{model} (binary={binary}): {got} != CLI {want}")
            check(result.get_response()["id"] == "r-1", "request id not echoed")

    # Several outputs (the encoder model has one; the MLP has one): ask for all outputs with no selection.
    x = rng.random((2, 784), dtype=np.float32)
    inp = httpclient.InferInput(meta["inputs"][0]["name"], [2, 784], "FP32")
    inp.set_data_from_numpy(x)
    result = client.infer("mlp", [inp])
    check(result.as_numpy(meta["outputs"][0]["name"]).shape == (2, 10), "all outputs by default")

    # Errors through the client: unknown model, wrong datatype, wrong shape.
    def error(call, code, words):
        try:
            call()
        except InferenceServerException as e:
            check(str(e.status()) == str(code) or code is None, f"status {e.status()} (want {code}): {e}")
            check(words in str(e.message()), f"message '{e.message()}' lacks '{words}'")
            return
        fail(f"no error (want {code} with '{words}')")

    error(lambda: client.infer("nope", [inp]), 404, "unknown model")
    bad = httpclient.InferInput(meta["inputs"][0]["name"], [2, 784], "FP64")
    bad.set_data_from_numpy(x.astype(np.float64))
    error(lambda: client.infer("mlp", [bad]), 400, "datatype")
    wrong = httpclient.InferInput(meta["inputs"][0]["name"], [2, 783], "FP32")
    wrong.set_data_from_numpy(x[:, :783].copy())
    error(lambda: client.infer("mlp", [wrong]), 400, "shape")
    print("protocol: ok (health, metadata, JSON and binary tensors equal the CLI, id echoed, 404/400 errors)")


def malformed():
    cases = [
        (b'{"inputs": [', {}, "not an inference request"),
        (b'{"inputs": [{"name": "input", "shape": [1, 10], "datatype": "FP32", "data": [1, 2]}]}', {}, "values for shape"),
        (b'{"inputs": [{"name": "input", "shape": [1, 10], "datatype": "INT77", "data": []}]}', {}, "datatype"),
        (b'{"inputs": [{"name": "input", "shape": [-1, 10], "datatype": "FP32", "data": []}]}', {}, "negative"),
        (b'{"inputs": [{"name": "input", "shape": [4000000000, 4000000000], "datatype": "FP32", "data": []}]}', {},
         "exceeds"),
        (b'{"inputs": [{"name": "input", "shape": [1, 10], "datatype": "FP32", "parameters": {"binary_data_size": 40}}]}'
         + b"\x00" * 8, {"Inference-Header-Content-Length": "100000"}, "Inference-Header-Content-Length"),
        (b'{"inputs": [{"name": "input", "shape": [1, 10], "datatype": "FP32", "parameters": {"binary_data_size": 400}}]}',
         {"Inference-Header-Content-Length": "105"}, "binary_data_size"),
        (b'{"inputs": [{"name": "input", "shape": [1, 10], "datatype": "FP32", "data": ["x"]}]}', {}, "not a number"),
        (b'[]', {}, "not an inference request"),
    ]
    for body, headers, words in cases:
        if "Inference-Header-Content-Length" in headers and headers["Inference-Header-Content-Length"] == "105":
            headers = {"Inference-Header-Content-Length": str(len(body))}
        status, data, _ = raw("POST", "/v2/models/linear/infer", body, headers)
        check(status == 400, f"{body[:60]!r}: status {status}")
        message = json.loads(data).get("error", "")
        check(words in message, f"{body[:60]!r}: error '{message}' lacks '{words}'")
    # A body over the limit (the server runs with --max-body-mb 1).
    status, data, _ = raw("POST", "/v2/models/linear/infer", b" " * (2 << 20))
    check(status == 400 and b"exceeds" in data, f"oversized body: {status} {data[:100]!r}")
    status, data, _ = raw("GET", "/v2/models/nope")
    check(status == 404 and b"unknown model" in data, f"unknown model metadata: {status}")
    # Still up and right after all of that.
    status, _, _ = raw("GET", "/v2/health/live")
    check(status == 200, "server down after malformed requests")
    print(f"malformed: ok ({len(cases) + 2} bad requests answered 400/404 with a message; server up)")


def load(clients, requests_each):
    """N concurrent clients × M requests each; every answer checked against the CLI's; none lost."""
    rng = np.random.default_rng(11)
    samples = [rng.random((1, 784), dtype=np.float32) for _ in range(8)]
    references = [cli_outputs("builtin:mlp", s)["logits"] for s in samples]
    latencies, errors = [], []
    worst = [0.0]
    lock = threading.Lock()

    def worker(index):
        client = httpclient.InferenceServerClient(url=HOST, connection_timeout=30, network_timeout=30)
        for j in range(requests_each):
            k = (index + j) % len(samples)
            inp = httpclient.InferInput("input", [1, 784], "FP32")
            inp.set_data_from_numpy(samples[k])
            start = time.perf_counter()
            try:
                got = client.infer("mlp", [inp]).as_numpy("logits")
            except Exception as e:  # noqa: BLE001 - every failure is reported
                with lock:
                    errors.append(str(e))
                continue
            elapsed = time.perf_counter() - start
            with lock:
                latencies.append(elapsed)
                # A request batched with others runs in a batched GEMM, which sums in another order than the
                # CLI's batch of one: equal within float32 rounding of these 784- and 512-term sums.
                if got is None or got.shape != references[k].shape or not np.allclose(got, references[k], rtol=1e-5,
                                                                                       atol=1e-5):
                    diff = None if got is None else float(np.max(np.abs(got - references[k])))
                    errors.append(f"client {index} request {j}: wrong output (max difference {diff})")
                else:
                    worst[0] = max(worst[0], float(np.max(np.abs(got - references[k]))))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    begin = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - begin
    check(not errors, f"{len(errors)} errors, first: {errors[:3]}")
    check(len(latencies) == clients * requests_each, f"{len(latencies)} answers for {clients * requests_each}")
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1e3
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1e3
    status, data, _ = raw("GET", "/metrics")
    text = data.decode()
    buckets = {}
    for line in text.splitlines():
        if line.startswith('inference_batch_size_bucket{model="mlp"'):
            le = line.split('le="')[1].split('"')[0]
            buckets[le] = int(line.rsplit(" ", 1)[1])
    executions = sum(int(l.rsplit(" ", 1)[1]) for l in text.splitlines()
                     if l.startswith('nv_inference_exec_count{model="mlp"'))
    inferences = sum(int(l.rsplit(" ", 1)[1]) for l in text.splitlines()
                     if l.startswith('nv_inference_count{model="mlp"'))
    check(inferences >= clients * requests_each, f"metrics count {inferences} samples")
    check(buckets.get("+Inf", 0) == executions, f"batch-size histogram {buckets} vs {executions} batches")
    costs = [float(l.rsplit(" ", 1)[1]) for l in text.splitlines()
             if l.startswith('inference_cost_dollars_per_million{model="mlp",device="cpu"}')]
    check(len(costs) == 1 and costs[0] > 0, f"cost gauge (serve --price cpu=3.6): {costs}")
    print(f"load: ok ({clients} clients x {requests_each} requests in {wall:.2f} s, all within float32 rounding of the CLI; "
          f"p50 {p50:.2f} ms, p99 {p99:.2f} ms; {inferences} samples in {executions} batches "
          f"(mean batch {inferences / max(executions, 1):.2f}); batch-size buckets {buckets}; "
          f"largest difference from the CLI {worst[0]:.3g}; ${costs[0]:.4g} per million samples so far)")


def route():
    """Single requests stay on the first device; a burst batched to 8 goes to the second (the profile's crossover
    is 4), and /metrics counts both decisions."""
    rng = np.random.default_rng(5)
    samples = [rng.random((1, 784), dtype=np.float32) for _ in range(8)]
    references = [cli_outputs("builtin:mlp", s)["logits"] for s in samples]
    client = httpclient.InferenceServerClient(url=HOST)

    def one(k, results):
        c = httpclient.InferenceServerClient(url=HOST)
        inp = httpclient.InferInput("input", [1, 784], "FP32")
        inp.set_data_from_numpy(samples[k])
        results[k] = c.infer("mlp", [inp]).as_numpy("logits")

    single = {}
    one(0, single)
    time.sleep(0.2)
    burst = {}
    threads = [threading.Thread(target=one, args=(k, burst)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k, got in list(single.items()) + list(burst.items()):
        check(got is not None and np.allclose(got, references[k], rtol=1e-4, atol=1e-4),
              f"sample {k}: {got} vs CLI {references[k]}")
    _, data, _ = raw("GET", "/metrics")
    routes = {}
    samples_by_device = {}
    for line in data.decode().splitlines():
        if line.startswith('inference_route_decisions_total{model="mlp"'):
            device = line.split('device="')[1].split('"')[0]
            routes[device] = routes.get(device, 0) + int(line.rsplit(" ", 1)[1])
        if line.startswith('nv_inference_count{model="mlp"'):
            device = line.split('device="')[1].split('"')[0]
            samples_by_device[device] = int(line.rsplit(" ", 1)[1])
    check(routes.get("cpu", 0) >= 1, f"no batch routed to the CPU: {routes}")
    check(routes.get("opencl:0", 0) >= 1, f"no batch routed to opencl:0: {routes}")
    check(samples_by_device.get("opencl:0", 0) >= 4, f"samples per device {samples_by_device}")
    del client
    print(f"route: ok (batches per device {routes}, samples per device {samples_by_device})")


def timeout():
    """A request whose timeout (microseconds) passes while it waits for its batch gets 503; one without runs."""
    body = json.dumps({"parameters": {"timeout": 1000}, "inputs": [
        {"name": "input", "shape": [1, 10], "datatype": "FP32", "data": [0.5] * 10}]}).encode()
    status, data, _ = raw("POST", "/v2/models/linear/infer", body)
    check(status == 503 and b"timeout" in data, f"expired request: {status} {data[:120]!r}")
    body = json.dumps({"inputs": [{"name": "input", "shape": [1, 10], "datatype": "FP32", "data": [0.5] * 10}]})
    status, _, _ = raw("POST", "/v2/models/linear/infer", body.encode())
    check(status == 200, f"request without a timeout: {status}")
    print("timeout: ok (expired in the queue: 503; without a timeout: 200)")


def queuefull():
    """--max-queue 1, --max-batch 2, 300 ms to fill a batch: a 1-sample request waits for company, a 2-sample one
    cannot join it and waits in the queue (full), and a third request is refused at once with 503."""
    def body(n):
        return json.dumps({"inputs": [{"name": "input", "shape": [n, 10], "datatype": "FP32",
                                       "data": [0.5] * (10 * n)}]}).encode()
    results = {}

    def send(key, n):
        results[key] = raw("POST", "/v2/models/linear/infer", body(n))[0]

    first = threading.Thread(target=send, args=("first", 1))
    first.start()
    time.sleep(0.05)
    second = threading.Thread(target=send, args=("second", 2))
    second.start()
    time.sleep(0.05)
    status, data, _ = raw("POST", "/v2/models/linear/infer", body(1))
    first.join()
    second.join()
    check(status == 503 and b"--max-queue" in data, f"third request: {status} {data[:120]!r}")
    check(results == {"first": 200, "second": 200}, f"queued requests: {results}")
    print("queuefull: ok (503 past --max-queue; the queued ones answered)")


def inflight():
    """One request, sent and answered while the test stops the server (graceful shutdown finishes it). Prints
    "queued" once the server counts the request in flight: the test stops the server then, not after a guess."""
    body = json.dumps({"inputs": [{"name": "input", "shape": [1, 10], "datatype": "FP32", "data": [0.5] * 10}]})
    result = {}

    def send():
        result["status"], result["data"], _ = raw("POST", "/v2/models/linear/infer", body.encode())

    sender = threading.Thread(target=send)
    sender.start()
    deadline = time.time() + 30
    while time.time() < deadline:
        _, metrics, _ = raw("GET", "/metrics")
        if b'inference_inflight_requests{model="linear"} 1' in metrics:
            break
        time.sleep(0.01)
    print("queued", flush=True)
    sender.join()
    status, data = result.get("status"), result.get("data", b"")
    check(status == 200 and b"probability" in data, f"in-flight request during shutdown: {status} {data[:120]!r}")
    print("inflight: ok (answered 200 during shutdown)")


if __name__ == "__main__":
    mode = sys.argv[4]
    if mode == "protocol":
        protocol()
    elif mode == "malformed":
        malformed()
    elif mode == "timeout":
        timeout()
    elif mode == "queuefull":
        queuefull()
    elif mode == "inflight":
        inflight()
    elif mode == "route":
        route()
    elif mode == "load":
        load(int(sys.argv[5]), int(sys.argv[6]))
    else:
        fail(f"unknown mode {mode}")
