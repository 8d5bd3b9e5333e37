#!/usr/bin/env python3
"""The real-model corpus: architectures users deploy, exported from PyTorch with random weights, timed against
onnxruntime (C API, in process) on the same inputs, interleaved, at each thread count.

  benchmarks/corpus.py make [--only a,b]          export the models to .build/corpus (needs torch, torchvision)
  benchmarks/corpus.py run [--threads 1,2] [--rounds 3] [--seconds 0.5] [--only a,b] [--output FILE] [--dir D]
                           [--openvino]   also OpenVINO's CPU plugin (benchmarks/setup-corpus-env installs it)

Invoked through `benchmarks/run --corpus`, which builds the drivers first. The models are not committed; this
script regenerates them (torch 2.13 CPU wheel; torchvision's model definitions only)."""
import argparse
import datetime
import json
import math
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, ".build", "corpus")
WORK = os.path.join(ROOT, ".build", "benchmarks")
# RUNTIME_BENCH=path times another build (e.g. an older commit's) against the same onnxruntime runs.
OURS = os.environ.get("RUNTIME_BENCH", os.path.join(ROOT, "benchmarks", ".build", "release", "runtime-bench"))
ORT = os.path.join(WORK, "ort_bench")
HOLD = os.path.join(WORK, "cpuid-hold.so")
OV = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ov_bench.py")


def builders():
    """name -> (module factory, input shape with batch 1). Imported lazily: `run` needs no torch."""
    import torch
    import torchvision
    from torch import nn

    tv = torchvision.models

    class BiGRU(nn.Module):  # a 2-layer bidirectional GRU tagger over 200 frames of 80 features
        def __init__(self):
            super().__init__()
            self.rnn = nn.GRU(80, 256, num_layers=2, bidirectional=True)
            self.head = nn.Linear(512, 40)

        def forward(self, x):
            return self.head(self.rnn(x)[0])

    class LSTMClassifier(nn.Module):  # 100 steps of 128 features, the last state classified
        def __init__(self):
            super().__init__()
            self.rnn = nn.LSTM(128, 256, batch_first=True)
            self.head = nn.Linear(256, 10)

        def forward(self, x):
            return self.head(self.rnn(x)[0][:, -1])

    class CRNN(nn.Module):  # a text-line recognizer: conv stack, then a bidirectional LSTM over the columns
        def __init__(self):
            super().__init__()

            def block(i, o, pool):
                return [nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(pool)]

            self.cnn = nn.Sequential(*block(1, 32, 2), *block(32, 64, 2), *block(64, 128, (2, 1)),
                                     *block(128, 128, (2, 1)))
            self.rnn = nn.LSTM(128 * 2, 128, bidirectional=True)
            self.head = nn.Linear(256, 80)

        def forward(self, x):
            f = self.cnn(x)  # [n, 128, 2, w]
            n, c, h, w = f.shape
            f = f.permute(3, 0, 1, 2).reshape(w, n, c * h)
            return self.head(self.rnn(f)[0])

    class UNet(nn.Module):  # a small segmenter: strided convs down, ConvTranspose and bilinear Resize up
        def __init__(self):
            super().__init__()

            def conv(i, o, s=1):
                return nn.Sequential(nn.Conv2d(i, o, 3, s, 1), nn.BatchNorm2d(o), nn.ReLU())

            self.d1, self.d2, self.d3 = conv(3, 32, 2), conv(32, 64, 2), conv(64, 128, 2)
            self.u1 = nn.ConvTranspose2d(128, 64, 2, 2)
            self.c1 = conv(128, 64)
            self.c2 = conv(64 + 32, 32)
            self.out = nn.Conv2d(32, 2, 1)

        def forward(self, x):
            a = self.d1(x)
            b = self.d2(a)
            c = self.d3(b)
            u = self.c1(torch.cat([self.u1(c), b], 1))
            u = nn.functional.interpolate(u, scale_factor=2, mode="bilinear", align_corners=False)
            u = self.c2(torch.cat([u, a], 1))
            return nn.functional.interpolate(self.out(u), scale_factor=2, mode="bilinear", align_corners=False)

    class FPNHead(nn.Module):  # a detector-style feature pyramid with nearest upsampling on a ResNet-18 trunk
        def __init__(self):
            super().__init__()
            r = tv.resnet18()
            self.stem = nn.Sequential(r.conv1, r.bn1, r.relu, r.maxpool, r.layer1)
            self.l2, self.l3, self.l4 = r.layer2, r.layer3, r.layer4
            self.lat = nn.ModuleList([nn.Conv2d(c, 128, 1) for c in (128, 256, 512)])
            self.head = nn.Conv2d(128, 6 * 9, 3, padding=1)

        def forward(self, x):
            c2 = self.l2(self.stem(x))
            c3 = self.l3(c2)
            c4 = self.l4(c3)
            p4 = self.lat[2](c4)
            p3 = self.lat[1](c3) + nn.functional.interpolate(p4, scale_factor=2, mode="nearest")
            p2 = self.lat[0](c2) + nn.functional.interpolate(p3, scale_factor=2, mode="nearest")
            return self.head(p2)

    encoder = nn.TransformerEncoder(
        nn.TransformerEncoderLayer(256, 4, 1024, dropout=0.0, batch_first=True), num_layers=6,
        enable_nested_tensor=False)
    vit = tv.VisionTransformer(image_size=224, patch_size=16, num_layers=6, num_heads=6, hidden_dim=384, mlp_dim=1536)
    image = [1, 3, 224, 224]
    return {
        "resnet18": (tv.resnet18, image),
        "resnet50": (tv.resnet50, image),
        "mobilenet_v2": (tv.mobilenet_v2, image),
        "mobilenet_v3_large": (tv.mobilenet_v3_large, image),
        "efficientnet_b0": (tv.efficientnet_b0, image),
        "shufflenet_v2": (tv.shufflenet_v2_x1_0, image),
        "squeezenet1_1": (tv.squeezenet1_1, image),
        "regnet_y_400mf": (tv.regnet_y_400mf, image),
        "densenet121": (tv.densenet121, image),
        "convnext_tiny": (tv.convnext_tiny, image),
        "vit_small": (lambda: vit, image),
        "transformer_encoder": (lambda: encoder, [1, 128, 256]),
        "bigru_tagger": (BiGRU, [200, 1, 80]),
        "lstm_classifier": (LSTMClassifier, [1, 100, 128]),
        "crnn": (CRNN, [1, 1, 32, 128]),
        "unet_segmenter": (UNet, [1, 3, 256, 256]),
        "fpn_detector": (FPNHead, [1, 3, 320, 320]),
    }


def make(only):
    import torch

    os.makedirs(CORPUS, exist_ok=True)
    torch.manual_seed(0)
    for name, (factory, shape) in builders().items():
        if only and name not in only:
            continue
        path = os.path.join(CORPUS, name + ".onnx")
        model = factory().eval()
        x = torch.rand(*shape)
        # The TorchScript exporter (opset 17): what most deployed models were exported with.
        torch.onnx.export(model, (x,), path, input_names=["x"], output_names=["y"], opset_version=17, dynamo=False)
        print(f"{name}: {os.path.getsize(path) / 1e6:.1f} MB, input {shape}", flush=True)


def run_json(command, env=None):
    out = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {out.stderr.strip()[-500:]}")
    return json.loads(out.stdout)


def openvino_version():
    out = subprocess.run([sys.executable, "-c", "import openvino; print(openvino.__version__.split('-')[0])"],
                         capture_output=True, text=True)
    return out.stdout.strip() or "(not installed)"


def model_io(path):
    import onnx

    model = onnx.load(path, load_external_data=False)
    initializers = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    dims = [d.dim_value if d.dim_value > 0 else 1 for d in inputs[0].type.tensor_type.shape.dim]
    return inputs[0].name, model.graph.output[0].name, dims


def run(args):
    from harness import cpu_name, ort_library  # the harness's own CPU name and onnxruntime library lookup

    lib, ort_version = ort_library()
    directory = args.dir or CORPUS
    names = sorted(f[:-5] for f in os.listdir(directory) if f.endswith(".onnx"))
    if args.only:
        names = [n for n in names if n in args.only]
    threads = [int(t) for t in args.threads.split(",")]
    isa = os.environ.get("INFERENCE_CPU_ISA", "widest")
    # With our kernels held to AVX2, the peers are held to it too, as on a CPU without AVX-512 (what a user with
    # such a CPU compares): onnxruntime and OpenVINO see a CPUID without AVX-512 (benchmarks/cpuid-hold.c, where
    # the CPU can make CPUID fault), OpenVINO's oneDNN also by ONEDNN_MAX_CPU_ISA, and every process's glibc string
    # functions by GLIBC_TUNABLES. Without CPUID faulting, onnxruntime runs the widest kernels the CPU has.
    ov_isa = {"avx2": "AVX2"}.get(isa)
    ours_env = ort_env = ov_env = None
    held = False
    if ov_isa:
        tunables = dict(os.environ, GLIBC_TUNABLES="glibc.cpu.hwcaps=-AVX512F,-AVX512VL,-AVX512BW,-AVX512DQ,-AVX512CD")
        hold = dict(tunables, CPUID_HOLD="avx2", LD_PRELOAD=HOLD)
        held = os.path.exists(HOLD) and subprocess.run(["true"], env=hold).returncode == 0
        ours_env = tunables
        ort_env = hold if held else tunables
        ov_env = dict(hold if held else tunables, ONEDNN_MAX_CPU_ISA=ov_isa)
    rows = []
    for name in names:
        path = os.path.join(directory, name + ".onnx")
        input_name, output_name, dims = model_io(path)
        for t in threads:
            ours, theirs, vino = [], [], []
            failure = None
            for _ in range(args.rounds):
                try:
                    ours.append(run_json([OURS, path, "1", str(args.seconds), str(t)], env=ours_env)["p50_ms"])
                except RuntimeError as error:
                    failure = str(error).splitlines()[-1][:160]
                    break
                # ort_bench takes the leading dimension as its batch: the model's own (fixed) one.
                theirs.append(run_json([ORT, lib, path, input_name, output_name, str(dims[0]), str(args.seconds),
                                        str(t)] + [str(d) for d in dims[1:]], env=ort_env)["p50_ms"])
                if args.openvino:
                    try:
                        vino.append(run_json([sys.executable, OV, path, str(args.seconds), str(t)]
                                             + [str(d) for d in dims], env=ov_env)["p50_ms"])
                    except RuntimeError as error:
                        print(f"{name:22} {t}t  openvino fails: {str(error).splitlines()[-1][:160]}", flush=True)
            if failure:
                rows.append((name, t, None, None, None, failure))
                print(f"{name:22} {t}t  fails: {failure}", flush=True)
                continue
            o, r = min(ours), min(theirs)
            v = min(vino) if vino else None
            rows.append((name, t, o, r, v, None))
            print(f"{name:22} {t}t  ours {o:9.3f} ms  onnxruntime {r:9.3f} ms  ratio {o / r:5.2f}"
                  + (f"  openvino {v:9.3f} ms  ratio {o / v:5.2f}" if v else ""), flush=True)
    title = "Real-model corpus" if directory == CORPUS else os.path.basename(directory) + " models"
    lines = [f"# {title}, {datetime.date.today()}", "",
             f"CPU: {cpu_name()}, {os.cpu_count()} logical cores; kernels: {isa}; onnxruntime {ort_version}"
             + (" (held to AVX2: it sees a CPUID without AVX-512, benchmarks/cpuid-hold.c)" if held else "") + ";"
             + (f" OpenVINO {openvino_version()} (CPU plugin, latency hint, float32"
                + (f", its kernels held to {ov_isa} by ONEDNN_MAX_CPU_ISA"
                   + (" and the same CPUID" if held else "") if ov_isa else "") + ");"
                if args.openvino else "")
             + (" onnxruntime runs its widest kernels (this CPU cannot make CPUID fault);"
                if ov_isa and not held else "") +
             f" batch 1; best p50 of {args.rounds} interleaved rounds of at least {args.seconds} s each.", "",
             "Command: `benchmarks/run " + ("--corpus " if directory == CORPUS else "--quantized ")
             + " ".join(a for a in sys.argv[2:] if not a.startswith("--dir") and a != directory) + "`", "",
             "| model | threads | ours ms | onnxruntime ms | ours / onnxruntime |"
             + (" openvino ms | ours / openvino | ours / faster |" if args.openvino else ""),
             "| --- | ---: | ---: | ---: | ---: |" + (" ---: | ---: | ---: |" if args.openvino else "")]
    for name, t, o, r, v, failure in rows:
        if failure is not None:
            lines.append(f"| {name} | {t} | fails | | {failure} |" + (" | | |" if args.openvino else ""))
            continue
        line = f"| {name} | {t} | {o:.3f} | {r:.3f} | {o / r:.2f} |"
        if args.openvino:
            line += f" {v:.3f} | {o / v:.2f} | {o / min(r, v):.2f} |" if v else " fails | | |"
        lines.append(line)
    lines.append("")

    def geomean(values):
        return math.exp(sum(math.log(x) for x in values) / len(values))

    for t in threads:
        done = [(o, r, v) for name, tt, o, r, v, f in rows if tt == t and f is None]
        if not done:
            continue
        ratios = [o / r for o, r, v in done]
        summary = (f"{t} thread{'s' if t > 1 else ''}: geometric mean {geomean(ratios):.2f} over {len(ratios)} models, "
                   f"worst {max(ratios):.2f}, {sum(x > 1.5 for x in ratios)} above 1.5")
        both = [(o, r, v) for o, r, v in done if v]
        if args.openvino and both:
            summary += (f"; against OpenVINO {geomean([o / v for o, r, v in both]):.2f}, against the faster of the two "
                        f"{geomean([o / min(r, v) for o, r, v in both]):.2f} over {len(both)} models")
        lines.append(f"- {summary}")
        print(summary)
    if args.output:
        with open(args.output, "w") as f:
            f.write("\n".join(lines) + "\n")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["make", "run"])
    parser.add_argument("--only", default="")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=0.5)
    parser.add_argument("--output", default=None)
    parser.add_argument("--dir", default=None, help="the models to time (default .build/corpus)")
    parser.add_argument("--openvino", action="store_true",
                        help="also time OpenVINO's CPU plugin (benchmarks/ov_bench.py; pip install openvino)")
    args = parser.parse_args()
    args.only = set(filter(None, args.only.split(",")))
    if args.command == "make":
        make(args.only)
    else:
        run(args)


if __name__ == "__main__":
    main()
