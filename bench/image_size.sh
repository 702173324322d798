#!/usr/bin/env bash
# Size of the service image, measured without a Docker engine: the Dockerfile's steps replayed into a
# debootstrap'ed Debian bookworm root (the same base as debian:bookworm-slim, with the slim image's dpkg
# excludes), then the root's size on disk, and a smoke test inside it (Django checks + one photo analysed with
# the shipped model). Writes bench/results/image_size.{md,json}.
# Usage (as root, needs debootstrap and network access to the Debian and PyPI registries):
#   bench/image_size.sh [WORKDIR]    (default: a new temporary directory, removed at the end)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

work=${1:-$(mktemp -d)}
keep=${1:+yes}
root="$work/rootfs"
cleanup() {
  for m in proc dev/pts dev; do umount "$root/$m" 2>/dev/null || true; done
  [ -n "$keep" ] || rm -rf "$work"
}
trap cleanup EXIT

in_root() { chroot "$root" /usr/bin/env -i PATH=/opt/venv/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root "$@"; }

# 1. FROM debian:bookworm-slim: a minbase root with the slim image's documentation excludes.
if [ ! -x "$root/usr/bin/apt-get" ]; then
  mkdir -p "$root/etc/dpkg/dpkg.cfg.d"
  cat >"$root/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
EOF
  debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >"$work/debootstrap.log"
fi
cp /etc/resolv.conf "$root/etc/resolv.conf"
mount_all() { for m in proc dev dev/pts; do mount --bind "/$m" "$1/$m"; done; }
mount_all "$root"
in_root apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/*/changelog* "$root"/usr/share/man/* "$root"/usr/share/locale/*
base_mb=$(du -sxm "$root" | cut -f1)

# 2. The Dockerfile's two stages. The apt lines are read from it: the first is the venv stage's, the second the image's.
mapfile -t apt_lines < <(sed -n 's/^[[:space:]]*&& apt-get install -y --no-install-recommends \(.*[^[:space:]]\)[[:space:]]*\\$/\1/p' Dockerfile)
[ "${#apt_lines[@]}" = 2 ] || { echo "expected two apt-get install lines in the Dockerfile" >&2; exit 1; }
read -r -a build_packages <<<"${apt_lines[0]}"
read -r -a packages <<<"${apt_lines[1]}"
build="$work/venv-stage"
rm -rf "$build" && for m in proc dev/pts dev; do umount "$root/$m"; done && cp -a "$root" "$build"
mount_all "$root" && mount_all "$build"
root_saved=$root
root=$build
in_root apt-get update -qq
DEBIAN_FRONTEND=noninteractive in_root apt-get install -y -qq --no-install-recommends "${build_packages[@]}" >/dev/null
mkdir -p "$build/tmp/build"
cp requirements.txt docker/build-venv.sh "$build/tmp/build/"
# pip trusts the build host's CA bundle (a registry proxy may sign TLS); it stays in the build stage.
cp /etc/ssl/certs/ca-certificates.crt "$build/tmp/build/host-ca.crt"
in_root /usr/bin/env PIP_CERT=/tmp/build/host-ca.crt sh /tmp/build/build-venv.sh /tmp/build/requirements.txt
for m in proc dev/pts dev; do umount "$build/$m"; done
root=$root_saved
in_root apt-get update -qq
DEBIAN_FRONTEND=noninteractive in_root apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
in_root apt-get clean
rm -rf "$root"/var/lib/apt/lists/*
cp -a "$build/opt/venv" "$root/opt/venv"
rm -rf "$build"
mkdir -p "$root/app"
# COPY . . honours .dockerignore; the committed tree is the build context.
git -C "$repo" archive HEAD | tar -x -C "$root/app"
while read -r pattern; do
  case "$pattern" in "" | "#"* | *"**"*) continue ;; esac
  rm -rf "${root:?}/app/"$pattern
done <.dockerignore
in_root useradd --create-home --uid 10001 feedmood
in_root sh -c 'cd /app && DEBUG=0 SECRET_KEY=collectstatic-only STATIC_ROOT=/app/staticfiles python manage.py collectstatic --noinput -v0'
rm -f "$root/etc/resolv.conf"
image_mb=$(du -sxm --exclude=proc --exclude=dev "$root" | cut -f1)
venv_mb=$(du -sxm "$root/opt/venv" | cut -f1)
app_mb=$(du -sxm "$root/app" | cut -f1)

# 3. Smoke test inside the image root: checks, migrations on SQLite, one photo analysed.
.venv/bin/python -c "import sys; from emotion import testing; open(sys.argv[1], 'wb').write(testing.encode(testing.one_face_image()))" "$root/tmp/face.jpg"
cp /etc/resolv.conf "$root/etc/resolv.conf"
smoke=$(in_root sh -c 'cd /app && export DATABASE_URL=sqlite:////tmp/db.sqlite3 MEDIA_ROOT=/tmp/media CELERY_BROKER_URL= REDIS_URL= && python manage.py check -v0 && python manage.py migrate -v0 && python manage.py analyze /tmp/face.jpg 2>/dev/null && python -c "import psycopg; print(psycopg.pq.__impl__)"')
rm -f "$root/etc/resolv.conf"
grep -q "^binary$" <<<"$smoke" || { echo "image smoke test: psycopg's binary implementation did not load" >&2; exit 1; }
grep -q "1 face(s)" <<<"$smoke" || { echo "image smoke test: no face found: $smoke" >&2; exit 1; }
tf=$(in_root python -c "import importlib.util as u; print(u.find_spec('tensorflow') is not None)")

mkdir -p bench/results
python3 - "$base_mb" "$image_mb" "$venv_mb" "$app_mb" "$tf" "${packages[*]}" "$smoke" <<'EOF'
import json, sys
base, image, venv, app = (int(x) for x in sys.argv[1:5])
tf, packages, smoke = sys.argv[5] == "True", sys.argv[6], sys.argv[7].strip().splitlines()
data = {"base_mb": base, "image_mb": image, "venv_mb": venv, "app_mb": app, "tensorflow_installed": tf,
        "apt_packages": packages.split(), "smoke": smoke}
json.dump(data, open("bench/results/image_size.json", "w"), indent=2)
open("bench/results/image_size.md", "w").write(
    "# Service image size\n\n"
    "Generated by `bench/image_size.sh`: the Dockerfile's steps replayed into a debootstrap'ed Debian bookworm root\n"
    "(the base of `debian:bookworm-slim`, with its documentation excludes), measured with `du` (uncompressed, as\n"
    "`docker image ls` reports), then Django checks, migrations and one photo analysed inside that root.\n\n"
    "| part | MB |\n|---|---:|\n"
    f"| base (bookworm minbase, slim excludes) | {base} |\n"
    f"| Python virtualenv (`requirements.txt`, built by `docker/build-venv.sh`) | {venv} |\n"
    f"| application (committed tree + collected static files) | {app} |\n"
    f"| **image** | **{image}** |\n\n"
    f"apt packages: {packages}; TensorFlow installed: {tf}.\n\n"
    f"Smoke test: `{smoke[-2] if len(smoke) > 1 else ''}`\n"
)
print(open("bench/results/image_size.md").read())
EOF
