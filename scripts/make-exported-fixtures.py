#!/usr/bin/env python3
"""Exports tiny versions of the architectures users bring (Hugging Face BERT, DistilBERT and GPT-2 from
`transformers` configs with random weights, a torchvision Swin-T block stack, a one-stage detector) with both
PyTorch exporters, builds a detector's NMS + RoiAlign post-processing as ONNX directly (nms-head), and saves
onnxruntime's outputs beside each model, for the exported-model tests (Tests/ONNXImportTests).

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


class TinyDetector(torch.nn.Module):
    """A one-stage detector in the shape users export: a strided backbone, a feature pyramid merged by
    nearest upsampling, box and class heads, the best anchors by TopK and a score threshold by boolean
    indexing (NonZero/GatherND), plus bilinear upsampling of a mask head."""

    def __init__(self, classes=3):
        super().__init__()
        self.stem = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, 2, 1), torch.nn.ReLU())
        self.down = torch.nn.Sequential(torch.nn.Conv2d(8, 8, 3, 2, 1), torch.nn.ReLU())
        self.lateral = torch.nn.Conv2d(8, 8, 1)
        self.boxes = torch.nn.Conv2d(8, 4, 3, 1, 1)
        self.scores = torch.nn.Conv2d(8, classes, 3, 1, 1)
        self.mask = torch.nn.Conv2d(8, 1, 1)

    def forward(self, image):
        c1 = self.stem(image)
        c2 = self.down(c1)
        p1 = self.lateral(c1) + torch.nn.functional.interpolate(c2, scale_factor=2.0, mode="nearest")
        boxes = self.boxes(p1).flatten(2).transpose(1, 2)  # [N, anchors, 4]
        scores = torch.sigmoid(self.scores(p1)).flatten(2)  # [N, classes, anchors]
        best, anchor = scores.max(dim=1)  # [N, anchors]
        top, order = torch.topk(best, 20, dim=1)
        picked = torch.gather(boxes, 1, order.unsqueeze(-1).expand(-1, -1, 4))
        keep = top[0] > 0.5
        kept = picked[0][keep]  # boolean indexing: a data-dependent count
        mask = torch.nn.functional.interpolate(self.mask(p1), scale_factor=4.0, mode="bilinear",
                                               align_corners=False)
        return top, picked, kept, mask


def detector():
    return TinyDetector().eval(), {"image": np.random.default_rng(3).standard_normal((1, 3, 32, 32)).astype(np.float32)}


def nms_head():
    """Second-stage post-processing built as ONNX directly (torchvision's NMS needs its compiled ops): boxes and
    scores → NonMaxSuppression → the selected boxes (Gather) → RoiAlign on a feature map → mean per region, and
    the count of kept boxes per class (Unique-free: a ReduceSum over a OneHot is not needed, Compress does it)."""
    from onnx import TensorProto, helper
    nodes = [
        helper.make_node("NonMaxSuppression", ["boxes", "scores", "max_out", "iou", "score_min"], ["selected"],
                         center_point_box=0),
        helper.make_node("Gather", ["selected", "two"], ["box_index"], axis=1),
        helper.make_node("Gather", ["selected", "zero"], ["batch_index"], axis=1),
        helper.make_node("Squeeze", ["boxes", "axis0"], ["boxes0"]),
        helper.make_node("Gather", ["boxes0", "box_index"], ["kept_boxes"], axis=0),
        helper.make_node("RoiAlign", ["features", "kept_boxes", "batch_index"], ["pooled"], output_height=3,
                         output_width=3, sampling_ratio=2, spatial_scale=0.25, mode="avg"),
        helper.make_node("ReduceMean", ["pooled", "axes"], ["region_means"], keepdims=0),
        helper.make_node("Gather", ["region_means", "zero"], ["region_means_first"], axis=1),
        helper.make_node("Greater", ["region_means_first", "zero_f"], ["positive"]),
        helper.make_node("Compress", ["kept_boxes", "positive"], ["positive_boxes"], axis=0),
    ]
    graph = helper.make_graph(
        nodes, "nms_head",
        [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 40, 4]),
         helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 2, 40]),
         helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, 4, 16, 16])],
        [helper.make_tensor_value_info("selected", TensorProto.INT64, ["selected", 3]),
         helper.make_tensor_value_info("region_means", TensorProto.FLOAT, ["selected", 4]),
         helper.make_tensor_value_info("positive_boxes", TensorProto.FLOAT, ["positive", 4])],
        initializer=[
            helper.make_tensor("max_out", TensorProto.INT64, [1], [5]),
            helper.make_tensor("iou", TensorProto.FLOAT, [1], [0.4]),
            helper.make_tensor("score_min", TensorProto.FLOAT, [1], [0.2]),
            helper.make_tensor("two", TensorProto.INT64, [], [2]),
            helper.make_tensor("zero", TensorProto.INT64, [], [0]),
            helper.make_tensor("zero_f", TensorProto.FLOAT, [], [0.0]),
            helper.make_tensor("axis0", TensorProto.INT64, [1], [0]),
            helper.make_tensor("axes", TensorProto.INT64, [2], [2, 3]),
        ])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    rng = np.random.default_rng(11)
    corners = rng.uniform(0, 48, size=(1, 40, 2)).astype(np.float32)
    sizes = rng.uniform(4, 20, size=(1, 40, 2)).astype(np.float32)
    feeds = {
        "boxes": np.concatenate([corners, corners + sizes], axis=2),
        "scores": rng.uniform(0, 1, size=(1, 2, 40)).astype(np.float32),
        "features": rng.standard_normal((1, 4, 16, 16)).astype(np.float32),
    }
    path = os.path.join(OUT, "nms-head.onnx")
    onnx.save(model, path)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    outputs = session.run(None, feeds)
    np.savez(os.path.join(OUT, "nms-head.inputs.npz"), **feeds)
    np.savez(os.path.join(OUT, "nms-head.outputs.npz"), **{o.name: v for o, v in zip(session.get_outputs(), outputs)})
    print(f"nms-head: selected {outputs[0].shape}, positive boxes {outputs[2].shape}")


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


MODELS = {"bert": bert, "distilbert": distilbert, "gpt2": gpt2, "swin": swin, "detector": detector}


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
    for name in sys.argv[1:] or list(MODELS) + ["nms-head"]:
        if name == "nms-head":
            nms_head()
            continue
        model, feeds = MODELS[name]()
        for dynamo in (False, True):
            export(name, model, feeds, dynamo)


if __name__ == "__main__":
    main()
