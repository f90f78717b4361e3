#!/usr/bin/python3
"""Exports a torchvision (or timm) image classifier as TorchScript for sweepq.

The classifier head is replaced by a fresh Linear layer with --num-classes
outputs (8 = 3 mask + 2 gender + 3 age for --multi-head), the model is
scripted with torch.jit.script (traced when scripting fails) and saved to
--out. The head's attribute path is printed on stdout as

    head_attribute: <path>

which is the value of `model.head_attribute` in a run config when the head
should be re-initialised in C++ for another class count. Fine-tune the file
with `model: {name: torchscript, torchscript: FILE.pt}`.

Pretrained weights cannot be downloaded by this tool: pass a state dict the
team already has with --weights (its head may have any class count);
without it the weights are random.

Run with Debian's interpreter, which has torch and torchvision:
    /usr/bin/python3 tools/export_model.py --arch resnet18 --num-classes 18 \\
        --out resnet18.pt
"""

import argparse
import os
import sys

MULTI_HEAD_CLASSES = 18
MULTI_HEAD_OUTPUTS = 3 + 2 + 3


class ExportError(Exception):
    """An input problem, reported as one line without a traceback."""


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="export_model.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--arch",
        help="torchvision.models classification model name (resnet18, "
        "resnet34, resnet50, mobilenet_v3_small, efficientnet_b0, ...)")
    source.add_argument(
        "--timm", metavar="NAME",
        help="timm model name (only when the timm package is importable)")
    parser.add_argument(
        "--num-classes", type=int,
        help="outputs of the new head (required unless --multi-head, which "
        "implies 18 classes)")
    parser.add_argument(
        "--multi-head", action="store_true",
        help="export one head of 8 outputs (mask 3, gender 2, age 3) for "
        "model.multi_head")
    parser.add_argument(
        "--weights", metavar="FILE.pth",
        help="state dict to load before the head is replaced (a dict of "
        "tensors, or a checkpoint holding one under 'state_dict' or 'model')")
    parser.add_argument(
        "--head", metavar="PATH",
        help="dotted path of the Linear head to replace (default: the last "
        "Linear layer of the model)")
    parser.add_argument(
        "--input-size", type=int, nargs=2, metavar=("HEIGHT", "WIDTH"),
        default=(128, 96),
        help="image size of the check forward pass and of the trace "
        "fallback (default 128 96)")
    parser.add_argument("--out", required=True, metavar="FILE.pt",
                        help="where to write the TorchScript module")
    args = parser.parse_args(argv)
    if args.multi_head:
        if args.num_classes not in (None, MULTI_HEAD_CLASSES):
            parser.error(f"--multi-head needs 18 classes, got --num-classes "
                         f"{args.num_classes}")
    elif args.num_classes is None:
        parser.error("--num-classes is required (or pass --multi-head)")
    elif args.num_classes < 1:
        parser.error(f"--num-classes must be >= 1, got {args.num_classes}")
    if min(args.input_size) < 1:
        parser.error("--input-size must be positive")
    return args


def build_model(args):
    if args.timm is not None:
        try:
            import timm
        except ImportError as e:
            raise ExportError(f"--timm {args.timm}: timm is not importable "
                              f"({e}); use --arch with a torchvision model")
        try:
            return timm.create_model(args.timm, pretrained=False)
        except Exception as e:  # timm raises RuntimeError for unknown names
            raise ExportError(f"--timm {args.timm}: {e}")
    import torchvision.models as models
    names = models.list_models(module=models)
    if args.arch not in names:
        raise ExportError(f"--arch {args.arch}: not a torchvision "
                          f"classification model; one of: {', '.join(names)}")
    return models.get_model(args.arch, weights=None)


def get_submodule(model, path):
    try:
        return model.get_submodule(path)
    except AttributeError:
        return None


def find_head(model, path, torch):
    """Returns the dotted path of the Linear head to replace."""
    if path is not None:
        module = get_submodule(model, path)
        if module is None:
            raise ExportError(f"--head {path}: no such submodule")
        if not isinstance(module, torch.nn.Linear):
            raise ExportError(f"--head {path}: is a {type(module).__name__}, "
                              "not a Linear layer")
        return path
    last = None
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            last = name
    if last is None:
        raise ExportError("the model has no Linear layer to use as the head; "
                          "name one with --head")
    return last


def set_submodule(model, path, module):
    parent_path, _, leaf = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    # Sequential children are keyed by their index as a string, so setattr
    # works for them as for named attributes.
    setattr(parent, leaf, module)


def new_linear(old, out_features, torch):
    return torch.nn.Linear(old.in_features, out_features,
                           bias=old.bias is not None)


def load_weights(model, head, path, torch):
    if not os.path.isfile(path):
        raise ExportError(f"--weights {path}: no such file")
    try:
        state = torch.load(path, map_location="cpu")
    except Exception as e:
        raise ExportError(f"--weights {path}: cannot be read ({e})")
    if isinstance(state, dict):
        for key in ("state_dict", "model"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(
            isinstance(v, torch.Tensor) for v in state.values()):
        raise ExportError(f"--weights {path}: not a state dict of tensors")
    # Checkpoints of DataParallel models prefix every key.
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    # The file's head may have another class count (a model already
    # fine-tuned elsewhere): resize the head to the file's before loading.
    head_weight = state.get(head + ".weight")
    old = model.get_submodule(head)
    if head_weight is not None and head_weight.dim() == 2 and \
            head_weight.shape[0] != old.out_features:
        set_submodule(model, head, new_linear(old, head_weight.shape[0],
                                              torch))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ExportError(f"--weights {path}: does not fit the model: {e}")


def to_torchscript(model, input_size, torch):
    try:
        return torch.jit.script(model), "script"
    except Exception as e:  # scripting raises many exception types
        print(f"export_model: torch.jit.script failed ({type(e).__name__}: "
              f"{str(e).splitlines()[0] if str(e) else ''}); tracing instead. "
              "A traced model keeps the train/eval behaviour of BatchNorm "
              "and dropout it was traced with.", file=sys.stderr)
    example = torch.zeros(1, 3, *input_size)
    try:
        return torch.jit.trace(model, example), "trace"
    except Exception as e:
        raise ExportError(f"neither torch.jit.script nor torch.jit.trace "
                          f"could convert the model: {e}")


def main(argv):
    args = parse_args(argv)
    try:
        import torch
    except ImportError as e:
        raise ExportError(f"torch is not importable ({e}); run with "
                          "/usr/bin/python3 (Debian's python3-torch)")
    out_dir = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(out_dir):
        raise ExportError(f"--out {args.out}: directory {out_dir} does not "
                          "exist")
    outputs = MULTI_HEAD_OUTPUTS if args.multi_head else args.num_classes

    model = build_model(args)
    head = find_head(model, args.head, torch)
    if args.weights is not None:
        load_weights(model, head, args.weights, torch)
    set_submodule(model, head, new_linear(model.get_submodule(head), outputs,
                                          torch))
    model.eval()
    scripted, how = to_torchscript(model, args.input_size, torch)

    # Check the saved module's output before writing it.
    with torch.no_grad():
        out = scripted(torch.zeros(1, 3, *args.input_size))
    if isinstance(out, (tuple, list)):
        out = out[0]
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or \
            out.shape[1] != outputs:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else \
            type(out).__name__
        raise ExportError(f"the exported model outputs {shape}, expected "
                          f"(N, {outputs}); name the head with --head")
    scripted.train()

    tmp = args.out + ".tmp"
    try:
        scripted.save(tmp)
        os.replace(tmp, args.out)
    except OSError as e:
        raise ExportError(f"--out {args.out}: cannot be written ({e})")
    name = args.timm if args.timm is not None else args.arch
    print(f"export_model: {name} ({how}, "
          f"{sum(p.numel() for p in model.parameters())} parameters, "
          f"{outputs} outputs) -> {args.out}", file=sys.stderr)
    print(f"head_attribute: {head}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except ExportError as e:
        print(f"export_model: error: {e}", file=sys.stderr)
        sys.exit(1)
