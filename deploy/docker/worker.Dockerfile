# sweepq-worker + sweepq-train built against a CUDA LibTorch (the project
# builds against Debian's CPU LibTorch 1.13 too; the code uses only API
# present in both 1.13 and 2.x).
#
#   docker build -f deploy/docker/worker.Dockerfile -t sweepq-worker \
#     --build-arg LIBTORCH_URL=https://download.pytorch.org/libtorch/cu121/libtorch-cxx11-abi-shared-with-deps-2.1.2%2Bcu121.zip \
#     --build-arg CUDA_PACKAGE=cuda-toolkit-12-1 .
#
# Build arguments:
#   LIBTORCH_URL  a cxx11-ABI LibTorch zip (must be the cxx11 ABI: Debian's
#                 gRPC and OpenCV are built with it). Its lib/ bundles the
#                 CUDA runtime libraries it needs; the driver comes from the
#                 host through the NVIDIA container toolkit.
#   CUDA_PACKAGE  the CUDA toolkit from NVIDIA's Debian 12 repository that
#                 matches the zip (TorchConfig.cmake looks for it at configure
#                 time; the runtime image does not need it).
# Run with `--gpus all` (Docker) or a `nvidia.com/gpu` limit (Kubernetes).
ARG LIBTORCH_URL=https://download.pytorch.org/libtorch/cu121/libtorch-cxx11-abi-shared-with-deps-2.1.2%2Bcu121.zip
ARG CUDA_PACKAGE=cuda-toolkit-12-1

FROM debian:12 AS build
ARG LIBTORCH_URL
ARG CUDA_PACKAGE
RUN apt-get update -q && apt-get install -y -q --no-install-recommends \
      cmake g++ make pkg-config ca-certificates curl unzip gnupg \
      libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler \
      libabsl-dev libsqlite3-dev libssl-dev libgoogle-glog-dev \
      libyaml-cpp-dev libopencv-dev opencv-data \
    && curl -fsSL -o /tmp/keyring.deb \
      https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64/cuda-keyring_1.1-1_all.deb \
    && dpkg -i /tmp/keyring.deb && apt-get update -q \
    && apt-get install -y -q --no-install-recommends "${CUDA_PACKAGE}" \
    && rm -rf /var/lib/apt/lists/*
RUN curl -fsSL -o /tmp/libtorch.zip "${LIBTORCH_URL}" \
    && unzip -q /tmp/libtorch.zip -d /opt && rm /tmp/libtorch.zip
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_PREFIX_PATH=/opt/libtorch -DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc \
      -DSWEEPQ_BUILD_TESTS=OFF -DSWEEPQ_BUILD_BENCH=OFF \
    && cmake --build /build -j"$(nproc)" \
    && cmake --install /build --prefix /opt/sweepq

FROM debian:12-slim
RUN apt-get update -q && apt-get install -y -q --no-install-recommends \
      libgrpc++1.51 libprotobuf32 libabsl20220623 libsqlite3-0 libssl3 \
      libgoogle-glog0v6 libyaml-cpp0.7 libopencv-core406 libopencv-imgproc406 \
      libopencv-imgcodecs406 libopencv-objdetect406 libopencv-dnn406 \
      opencv-data libgomp1 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /work sweepq \
    && mkdir -p /work && chown sweepq:sweepq /work
COPY --from=build /opt/libtorch/lib/ /opt/libtorch/lib/
COPY --from=build /opt/sweepq/bin/ /usr/local/bin/
ENV LD_LIBRARY_PATH=/opt/libtorch/lib
USER sweepq
WORKDIR /work
ENTRYPOINT ["/usr/local/bin/sweepq-worker"]
