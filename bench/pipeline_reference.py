#!/usr/bin/python3
"""The reference sweepq's data pipeline must beat: the PyTorch / torchvision
/ PIL input pipeline a Python team runs on the mask competition layout.

A torchvision.datasets-style Dataset opens each JPEG with PIL, crops the
fixed face box (80, 50, 220 x 320 on 384 x 512, scaled to the image, as
sweepq's `fixed` detector), then transforms.Compose of Resize, random
horizontal flip, ColorJitter, AutoAugment (ImageNet policy), ToTensor,
Normalize and RandomErasing (the cutout); a DataLoader with `--workers`
worker processes batches it.

Epoch 1 includes starting the worker processes and is reported apart;
the throughput is that of epochs 2..N (persistent workers), each of which
decodes every image again (a Dataset has no decode cache).
Prints, last: reference images=<n> epochs=<e> seconds=<s> images_per_s=<r>
"""
import argparse
import os
import time

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
# The fixed face box of sweepq's `fixed` detector, on a 384 x 512 image.
FIXED_BOX = (80, 50, 220, 320)
REFERENCE_SIZE = (384, 512)


def mask_images(root):
    """Every image of DATA/train/images/<person>/, in a stable order."""
    images_dir = os.path.join(root, "train", "images")
    paths = []
    for person in sorted(os.listdir(images_dir)):
        person_dir = os.path.join(images_dir, person)
        if person.startswith(".") or not os.path.isdir(person_dir):
            continue
        for name in sorted(os.listdir(person_dir)):
            if name.startswith("."):
                continue
            if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                paths.append(os.path.join(person_dir, name))
    return paths


class MaskFaces(Dataset):
    """PIL open + fixed face crop + a transform, as a torchvision dataset."""

    def __init__(self, paths, transform):
        self.paths = paths
        self.transform = transform

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        with Image.open(self.paths[index]) as image:
            image = image.convert("RGB")
        sx = image.width / REFERENCE_SIZE[0]
        sy = image.height / REFERENCE_SIZE[1]
        x, y, w, h = FIXED_BOX
        left, top = round(x * sx), round(y * sy)
        box = (left, top, min(image.width, left + round(w * sx)),
               min(image.height, top + round(h * sy)))
        return self.transform(image.crop(box)), 0


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True,
                        help="a mask competition layout (sweepq-make-dataset)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3,
                        help="epochs; the first (worker start) is not timed")
    parser.add_argument("--width", type=int, default=96)
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be >= 2 (the first is a warm-up)")

    paths = mask_images(args.data)
    if not paths:
        parser.error(f"{args.data}: no images under train/images/")
    torch.manual_seed(args.seed)
    # sweepq's Cutout: one black square of side round(0.25 * shorter side)
    # with probability 0.5; RandomErasing takes it as an area share.
    side = round(0.25 * min(args.width, args.height))
    cutout_area = side * side / (args.width * args.height)
    transform = transforms.Compose([
        transforms.Resize((args.height, args.width)),
        transforms.RandomHorizontalFlip(0.5),
        transforms.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2,
                               hue=0.05),
        transforms.AutoAugment(transforms.AutoAugmentPolicy.IMAGENET),
        transforms.ToTensor(),
        transforms.Normalize((0.548, 0.504, 0.479), (0.237, 0.247, 0.246)),
        transforms.RandomErasing(p=0.5, scale=(cutout_area, cutout_area),
                                 ratio=(1, 1), value=0),
    ])
    loader = DataLoader(MaskFaces(paths, transform),
                        batch_size=args.batch_size, shuffle=True,
                        num_workers=args.workers,
                        persistent_workers=args.workers > 0)

    timed_images = 0
    timed_seconds = 0.0
    for epoch in range(args.epochs):
        start = time.perf_counter()
        images = 0
        for batch, _ in loader:
            images += batch.shape[0]
        seconds = time.perf_counter() - start
        print(f"reference epoch={epoch + 1} images={images} "
              f"seconds={seconds:.3f} images_per_s={images / seconds:.1f}",
              flush=True)
        if epoch > 0:
            timed_images += images
            timed_seconds += seconds
    print(f"reference images={len(paths)} epochs={args.epochs - 1} "
          f"seconds={timed_seconds:.3f} "
          f"images_per_s={timed_images / timed_seconds:.1f}", flush=True)


if __name__ == "__main__":
    main()
