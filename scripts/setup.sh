#!/usr/bin/env bash
# Installs everything Lumen needs on a fresh machine of our kind (Debian, root,
# Rust + Node/npm + Python + gcc in the base image, no internet but the package
# registries). Idempotent: when everything is present it only checks and exits
# in a few seconds.
#
#   tools/node_modules   pinned npm packages from tools/package-lock.json:
#                        Foundry (anvil, forge, cast), solc (solcjs),
#                        OpenZeppelin contracts, forge-std (inside
#                        @layerzerolabs/toolbox-foundry)
#   tools/bin            anvil, forge, cast (the native binaries, not the npm
#                        wrappers) and a `solc` front for forge backed by solcjs
#   blender              Debian package, for the nodes and the end-to-end tests
#   bubblewrap           Debian package: the sandbox every Blender run goes
#                        through (checked to work here: it needs user namespaces)
#   gateway/web/node_modules  the dashboard's pinned toolchain from its
#                        package-lock.json (TypeScript, esbuild, viem,
#                        playwright-core)
#   chromium             Debian package: the browser the dashboard's tests
#                        drive headless (Playwright's own download cannot work here)
#
# Set LUMEN_SKIP_BLENDER=1 to skip the Blender and bubblewrap install
# (contract-only work), LUMEN_SKIP_BROWSER=1 to skip Chromium.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$root/tools"
log() { printf 'setup: %s\n' "$*" >&2; }

# Installs Debian package $1 (what $3 says, if anything, about its size),
# which provides command $2: as root only, apt-get update first.
apt_install() {
  local package="$1" command="$2" note="${3:-}"
  if [[ "$(id -u)" != "0" ]]; then
    log "$command is missing and we are not root: install the Debian package '$package'"
    exit 1
  fi
  log "installing Debian package $package${note:+ ($note)}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "$package" >/dev/null
}

# --- npm toolchain ----------------------------------------------------------
lock_hash="$(sha256sum "$tools/package-lock.json" | cut -d' ' -f1)"
stamp="$tools/.stamp-npm"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$lock_hash" && -d "$tools/node_modules" ]]; then
  log "npm toolchain up to date"
else
  log "installing pinned npm toolchain into tools/node_modules"
  # `npm install` (not `npm ci`): npm 11 leaves the other platforms' optional
  # Foundry binaries out of the lockfile, which `npm ci` then rejects.
  (cd "$tools" && npm install --no-audit --no-fund --loglevel=error)
  printf '%s' "$lock_hash" >"$stamp"
fi

arch="$(uname -m)"
case "$arch" in
  x86_64) platform="linux-amd64" ;;
  aarch64) platform="linux-arm64" ;;
  *) log "unsupported architecture $arch"; exit 1 ;;
esac

mkdir -p "$tools/bin"
for tool in anvil forge cast; do
  native="$tools/node_modules/@foundry-rs/$tool-$platform/bin/$tool"
  if [[ ! -x "$native" ]]; then
    log "missing $native: is @foundry-rs/$tool-$platform in tools/package-lock.json?"
    exit 1
  fi
  ln -sfn "$native" "$tools/bin/$tool"
done

cat >"$tools/bin/solc" <<SOLC
#!/bin/sh
exec node "$root/scripts/solc.cjs" "\$@"
SOLC
chmod +x "$tools/bin/solc"

# --- dashboard toolchain ----------------------------------------------------
web="$root/gateway/web"
web_hash="$(sha256sum "$web/package-lock.json" | cut -d' ' -f1)"
web_stamp="$tools/.stamp-web-npm"
if [[ -f "$web_stamp" && "$(cat "$web_stamp")" == "$web_hash" && -d "$web/node_modules" ]]; then
  log "dashboard npm toolchain up to date"
else
  log "installing the dashboard's pinned npm toolchain into gateway/web/node_modules"
  (cd "$web" && npm ci --no-audit --no-fund --loglevel=error)
  printf '%s' "$web_hash" >"$web_stamp"
fi

# --- Chromium (the dashboard's browser tests) -------------------------------
if [[ "${LUMEN_SKIP_BROWSER:-0}" == "1" ]]; then
  log "skipping Chromium (LUMEN_SKIP_BROWSER=1)"
elif command -v chromium >/dev/null 2>&1; then
  log "chromium present: $(chromium --version 2>/dev/null | head -n1)"
else
  apt_install chromium chromium
  log "chromium installed: $(chromium --version 2>/dev/null | head -n1)"
fi

# --- Blender ----------------------------------------------------------------
if [[ "${LUMEN_SKIP_BLENDER:-0}" == "1" ]]; then
  log "skipping Blender (LUMEN_SKIP_BLENDER=1)"
elif command -v blender >/dev/null 2>&1; then
  log "blender present: $(blender --version 2>/dev/null | head -n1)"
else
  apt_install blender blender "about 780 MB"
  log "blender installed: $(blender --version 2>/dev/null | head -n1)"
fi

# --- bubblewrap (the render sandbox) ----------------------------------------
if [[ "${LUMEN_SKIP_BLENDER:-0}" != "1" ]]; then
  if ! command -v bwrap >/dev/null 2>&1; then
    apt_install bubblewrap bwrap
  fi
  # The namespaces Lumen's sandbox needs (crates/blender/src/sandbox.rs).
  if bwrap --unshare-all --unshare-user --disable-userns --ro-bind / / --dev /dev --proc /proc \
      -- true 2>/dev/null; then
    log "bubblewrap present: $(bwrap --version), sandbox works"
  elif [[ "${LUMEN_SANDBOX:-on}" == "off" ]]; then
    log "bubblewrap cannot create user namespaces here; LUMEN_SANDBOX=off: Blender will run UNCONFINED"
  else
    log "bubblewrap cannot create user namespaces here, so nodes and gateways refuse to run Blender:"
    log "enable them (sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces > 0),"
    log "or set LUMEN_SANDBOX=off on a development machine (Blender then runs unconfined)"
    exit 1
  fi
fi

log "ready: $("$tools/bin/forge" --version | head -n1), $("$tools/bin/anvil" --version | head -n1), solc $("$tools/bin/solc" --version | tail -n1)"
