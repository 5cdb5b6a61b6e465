# shellcheck shell=bash
# tests/compose/images.sh — the images docker/docker-compose.yml runs,
# sourced after tests/compose/engine.sh (inside ce_ns, on the host's network).
#
# Where an image the compose file names cannot be pulled (no registry is
# reachable from CI), a stand-in is built under that name:
#   debian:bookworm-slim, debian:bookworm   debootstrap --variant=minbase bookworm,
#                                           imported (both names, one image)
#   postgres:16-bookworm                    tests/compose/images/postgres
#   redis:7-bookworm                        tests/compose/images/redis
#   apache/kafka:3.7.0                      tests/compose/images/kafka (the jars
#                                           of tests/.kafka, kafka_fetch)
# Each stand-in carries the label io.dagq.stand-in saying what it is. A name
# that exists and is no stand-in (pulled earlier) is used as it is; a
# stand-in is built again every run, which the layer cache makes a matter of
# seconds unless its Dockerfile or files changed. The dagq image itself is
# always built from docker/Dockerfile and the work tree (again cached by
# layer), so the tests run the code they are part of.

CI_DEBIAN_MIRROR=${DAGQ_DEBIAN_MIRROR:-http://deb.debian.org/debian}

# ci__build NAME LOG ARGS...: an image build, its output in LOG (the tail
# printed when it fails). Podman: --format docker (an OCI image has no
# HEALTHCHECK), RUN steps on the host's network (no bridge, no firewall rules).
ci__build() {
    local name=$1 log=$2 t0=$SECONDS
    shift 2
    local opts=()
    [ "$DAGQ_COMPOSE_ENGINE" = podman ] && opts=(--format docker --network host)
    if ! ce_engine build "${opts[@]}" "$@" >"$log" 2>&1; then
        echo "images: building $name failed; the end of $log:" >&2
        tail -25 "$log" >&2
        return 1
    fi
    ce_log "images: $name built in $((SECONDS - t0)) s"
}

# why the last pull failed: the end of the engine's last words
ci__why() { tail -1 "$CE_RUN/pull.log" | sed 's/.*: //'; }

ci__is_standin() {
    [ -n "$(ce_engine image inspect --format '{{index .Config.Labels "io.dagq.stand-in"}}' "$1" 2>/dev/null)" ]
}

# ci_base: debian:bookworm-slim and debian:bookworm, pulled or bootstrapped.
ci_base() {
    local img need=() t0=$SECONDS
    for img in docker.io/library/debian:bookworm-slim docker.io/library/debian:bookworm; do
        ce_engine image inspect "$img" >/dev/null 2>&1 && continue
        if timeout 300 "$(ce_engine_cmd)" pull "$img" >"$CE_RUN/pull.log" 2>&1; then
            ce_log "images: $img pulled"
        else
            need+=("$img")
        fi
    done
    [ ${#need[@]} -eq 0 ] && return 0
    ce_log "images: cannot pull ${need[*]} ($(ci__why)); bootstrapping Debian bookworm"
    local root="$CE_CACHE/base.rootfs"
    rm -rf "$root"
    if ! debootstrap --variant=minbase bookworm "$root" "$CI_DEBIAN_MIRROR" >"$CE_RUN/debootstrap.log" 2>&1; then
        echo "images: debootstrap failed; the end of $CE_RUN/debootstrap.log:" >&2
        tail -20 "$CE_RUN/debootstrap.log" >&2
        rm -rf "$root"
        return 1
    fi
    # as Debian's own images: no package cache, the same three suites
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root/etc/apt/sources.list"
    local sec=${CI_DEBIAN_MIRROR%/debian}/debian-security
    cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $CI_DEBIAN_MIRROR
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $sec
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    local id
    id=$(tar -C "$root" --numeric-owner -cf - . | ce_engine import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["bash"]' \
        --change "LABEL io.dagq.stand-in=\"debian: debootstrap --variant=minbase bookworm, for dagq's compose tests\"" \
        - 2>"$CE_RUN/import.log" | tail -1)
    rm -rf "$root"
    [ -n "$id" ] || { cat "$CE_RUN/import.log" >&2; return 1; }
    for img in "${need[@]}"; do ce_engine tag "$id" "$img" || return 1; done
    ce_log "images: ${need[*]} bootstrapped in $((SECONDS - t0)) s"
}

# ci_standin IMAGE DIR [BUILD ARGS...]: IMAGE pulled, or its stand-in built
# from tests/compose/images/DIR.
ci_standin() {
    local img=$1 dir=$2
    shift 2
    if ce_engine image inspect "$img" >/dev/null 2>&1; then
        ci__is_standin "$img" || return 0 # pulled earlier: the real image
    elif timeout 300 "$(ce_engine_cmd)" pull "$img" >"$CE_RUN/pull.log" 2>&1; then
        ce_log "images: $img pulled"
        return 0
    else
        ce_log "images: cannot pull $img ($(ci__why)); building its stand-in"
    fi
    ci__build "$img (stand-in)" "$CE_RUN/build-$dir.log" -t "$img" "$@" "$T_REPO/tests/compose/images/$dir"
}

# ci_dagq: the dagq image, built from docker/Dockerfile and the work tree.
ci_dagq() {
    local ignore=()
    [ "$DAGQ_COMPOSE_ENGINE" = podman ] && ignore=(--ignorefile "$T_REPO/docker/Dockerfile.dockerignore")
    ci__build "${DAGQ_IMAGE:-dagq:latest}" "$CE_RUN/build-dagq.log" -f "$T_REPO/docker/Dockerfile" \
        "${ignore[@]}" -t "${DAGQ_IMAGE:-dagq:latest}" "$T_REPO"
}

# ci_prepare BROKERS: every image the stack needs for those brokers.
ci_prepare() {
    ci_base || return 1
    ci_standin docker.io/library/postgres:16-bookworm postgres || return 1
    ci_standin docker.io/library/redis:7-bookworm redis || return 1
    case " $1 " in *" kafka "*)
        ci_standin docker.io/apache/kafka:3.7.0 kafka --build-context "jars=$T_REPO/tests/.kafka" || return 1
        ;;
    esac
    ci_dagq || return 1
    # dangling images older than a week: earlier dagq builds, and build-stage
    # layers no name keeps (a younger one is still the cache of the next build)
    ce_engine image prune -f --filter until=168h >/dev/null 2>&1
    return 0
}
