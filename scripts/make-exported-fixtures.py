#!/usr/bin/env python3
"""Exports tiny versions of the architectures users bring (Hugging Face BERT, DistilBERT and GPT-2 from
`transformers` configs with random weights, a torchvision Swin-T block stack) with both PyTorch exporters, and
saves onnxruntime's outputs beside each model, for the exported-model tests (Tests/ONNXImportTests).

For every model NAME it writes Tests/ONNXImportTests/Fixtures/exported/NAME.onnx, NAME.inputs.npz and
NAME.outputs.npz (onnxruntime's results, named like the graph outputs). Widths are tiny so each file stays well
under 1 MB and CI needs no PyTorch. Needs torch (CPU wheel), torchvision and transformers in .venv:
    .venv/bin/pip install "torch==2.13.0+cpu" transformers
    .venv/bin/pip install --no-deps torchvision
    .venv/bin/python scripts/make-exported-fixtures.py [NAME ...]
"""
import os
import sys
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import torch

OUT = "Tests/ONNXImportTests/Fixtures/exported"
warnings.filterwarnings("ignore")
torch.manual_seed(20261204)


class Logits(torch.nn.Module):
    """Returns the first tensor of a Hugging Face model's output (the exporters want plain tensors)."""

    def __init__(self, model, names):
        super().__init__()
        self.model = model
        self.names = names

    def forward(self, *args):
        out = self.model(**dict(zip(self.names, args)))
        return out[0]


def bert():
    from transformers import BertConfig, BertModel
    config = BertConfig(vocab_size=96, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=64, type_vocab_size=2)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    return Logits(BertModel(config).eval(), names).eval(), token_inputs(names)


def distilbert():
    from transformers import DistilBertConfig, DistilBertModel
    config = DistilBertConfig(vocab_size=96, dim=32, n_layers=2, n_heads=4, hidden_dim=64, max_position_embeddings=64)
    names = ["input_ids", "attention_mask"]
    return Logits(DistilBertModel(config).eval(), names).eval(), token_inputs(names)


def gpt2():
    from transformers import GPT2Config, GPT2Model
    config = GPT2Config(vocab_size=96, n_embd=32, n_layer=2, n_head=4, n_positions=64, use_cache=False)
    names = ["input_ids", "attention_mask"]
    return Logits(GPT2Model(config).eval(), names).eval(), token_inputs(names)


def swin():
    from torchvision.models import swin_transformer as st
    model = st.SwinTransformer(patch_size=[4, 4], embed_dim=16, depths=[2, 2], num_heads=[2, 4], window_size=[4, 4],
                               stochastic_depth_prob=0.0, num_classes=10).eval()
    return model, {"image": np.random.default_rng(1).standard_normal((1, 3, 32, 32)).astype(np.float32)}


def token_inputs(names, batch=2, length=12):
    rng = np.random.default_rng(7)
    feeds = {}
    for name in names:
        if name == "input_ids":
            feeds[name] = rng.integers(0, 96, size=(batch, length)).astype(np.int64)
        elif name == "attention_mask":
            mask = np.ones((batch, length), dtype=np.int64)
            mask[1, length - 3:] = 0  # padding in the second sequence
            feeds[name] = mask
        else:
            feeds[name] = np.zeros((batch, length), dtype=np.int64)
    return feeds


MODELS = {"bert": bert, "distilbert": distilbert, "gpt2": gpt2, "swin": swin}


def export(name, model, feeds, dynamo):
    suffix = "dynamo" if dynamo else "torchscript"
    path = os.path.join(OUT, f"{name}-{suffix}.onnx")
    args = tuple(torch.from_numpy(v) for v in feeds.values())
    if dynamo:
        program = torch.onnx.export(model, args, input_names=list(feeds), output_names=["output"], dynamo=True,
                                    optimize=True, verbose=False)
        program.save(path)
    else:
        torch.onnx.export(model, args, path, input_names=list(feeds), output_names=["output"], opset_version=17,
                          dynamo=False)
    # One self-contained file: fold external data back in.
    onnx_model = onnx.load(path, load_external_data=True)
    onnx.save(onnx_model, path, save_as_external_data=False)
    data = path + ".data"
    if os.path.exists(data):
        os.remove(data)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    used = {k: v for k, v in zip(feeds, feeds.values()) if k in names}
    outputs = session.run(None, used)
    np.savez(os.path.join(OUT, f"{name}-{suffix}.inputs.npz"), **used)
    np.savez(os.path.join(OUT, f"{name}-{suffix}.outputs.npz"),
             **{o.name: v for o, v in zip(session.get_outputs(), outputs)})
    ops = sorted({n.op_type for n in onnx_model.graph.node})
    print(f"{name}-{suffix}: {os.path.getsize(path) // 1024} KiB, opset "
          f"{[o.version for o in onnx_model.opset_import if o.domain in ('', 'ai.onnx')]}, ops {ops}")


def main():
    os.makedirs(OUT, exist_ok=True)
    for name in sys.argv[1:] or MODELS:
        model, feeds = MODELS[name]()
        for dynamo in (False, True):
            export(name, model, feeds, dynamo)


if __name__ == "__main__":
    main()
