# Build with cargo, run the binary alone (with CA certificates) as a
# non-root user on a minimal base.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin authmux

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/authmux /usr/local/bin/authmux
USER nonroot:nonroot
ENV AUTHMUX_LISTEN=0.0.0.0:8080 \
    AUTHMUX_DATA_DIR=/var/lib/authmux
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/authmux"]
CMD ["serve"]
