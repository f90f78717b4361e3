# sweepq-server (and the sweepq CLI) on Debian 12, without LibTorch/OpenCV.
#   docker build -f deploy/docker/server.Dockerfile -t sweepq-server .
#   docker run -p 50051:50051 -v sweepq-state:/var/lib/sweepq sweepq-server
# Create a team inside the running container:
#   docker exec CONTAINER sweepq-server --db=/var/lib/sweepq/sweepq.db team create NAME
FROM debian:12 AS build
RUN apt-get update -q && apt-get install -y -q --no-install-recommends \
      cmake g++ make pkg-config ca-certificates \
      libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler \
      libabsl-dev libsqlite3-dev libssl-dev libgoogle-glog-dev \
      libyaml-cpp-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release \
      -DSWEEPQ_BUILD_WORKER=OFF -DSWEEPQ_BUILD_TESTS=OFF \
      -DSWEEPQ_BUILD_BENCH=OFF \
    && cmake --build /build -j"$(nproc)" \
    && cmake --install /build --prefix /opt/sweepq

FROM debian:12-slim
RUN apt-get update -q && apt-get install -y -q --no-install-recommends \
      libgrpc++1.51 libprotobuf32 libabsl20220623 libsqlite3-0 libssl3 \
      libgoogle-glog0v6 libyaml-cpp0.7 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/sweepq sweepq \
    && mkdir -p /var/lib/sweepq && chown sweepq:sweepq /var/lib/sweepq
COPY --from=build /opt/sweepq/bin/ /usr/local/bin/
USER sweepq
VOLUME /var/lib/sweepq
EXPOSE 50051
ENTRYPOINT ["/usr/local/bin/sweepq-server"]
CMD ["--db=/var/lib/sweepq/sweepq.db", "--artifacts=/var/lib/sweepq/artifacts", \
     "--listen=0.0.0.0:50051"]
