#!/usr/bin/python3
"""The reference the training step must match: Python PyTorch (Debian's
python3-torch and python3-torchvision) running torchvision's ResNet-18 with
a new 18-class head, forward + backward + AdamW step on random batches of
the given shape, with the given intra-op threads.

Prints one line: python images_per_s=<r> steps=<n> seconds=<s>
"""
import argparse
import time

import torch
import torch.nn.functional as F
import torchvision


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=96)
    parser.add_argument("--classes", type=int, default=18)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=15)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=args.classes)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    images = torch.randn(args.batch, 3, args.height, args.width)
    labels = torch.randint(0, args.classes, (args.batch,))

    def step() -> None:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()

    for _ in range(args.warmup):
        step()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    seconds = time.perf_counter() - start
    print(f"python images_per_s={args.batch * args.steps / seconds:.2f} "
          f"steps={args.steps} seconds={seconds:.3f}", flush=True)


if __name__ == "__main__":
    main()
