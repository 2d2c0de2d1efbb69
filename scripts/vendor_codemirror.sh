#!/usr/bin/env bash
# Refresh the vendored CodeMirror 6 bundle used by the panel editor pages.
#
# Installs the CodeMirror packages from npm into a temporary directory, bundles them with
# esbuild into one minified ES module, and copies each package's licence beside it. The
# result is committed: the server only serves static files, nothing is built at serve time.
#
#   scripts/vendor_codemirror.sh            # newest releases of the pinned major versions
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
target="$here/workspaces/static/workspaces/vendor/codemirror"
packages=(
  "codemirror@^6"
  "@codemirror/lang-xml@^6"
  "@codemirror/lang-javascript@^6"
  "@codemirror/lint@^6"
  "@codemirror/autocomplete@^6"
  "@codemirror/state@^6"
  "@codemirror/view@^6"
  "@codemirror/language@^6"
  "@lezer/common@^1"
  "esbuild@^0.24"
)

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
npm init -y >/dev/null
npm install --no-audit --no-fund --silent "${packages[@]}"

# One entry module re-exporting what the editor pages import.
cat > entry.js <<'JS'
export { basicSetup, EditorView } from "codemirror";
export { EditorState, Compartment } from "@codemirror/state";
export { keymap } from "@codemirror/view";
export { LanguageSupport } from "@codemirror/language";
export { parseMixed } from "@lezer/common";
export { xml, xmlLanguage } from "@codemirror/lang-xml";
export { javascript, javascriptLanguage } from "@codemirror/lang-javascript";
export { linter, lintGutter, forceLinting, setDiagnostics } from "@codemirror/lint";
export { autocompletion } from "@codemirror/autocomplete";
JS

npx esbuild entry.js --bundle --format=esm --minify --legal-comments=none \
  --target=es2020 --outfile=codemirror.bundle.js

rm -rf "$target"
mkdir -p "$target/licenses"
cp codemirror.bundle.js "$target/codemirror.bundle.js"

# Every package that went into the bundle, with its version and licence file.
{
  echo "CodeMirror 6 bundle for the Nexus panel editor, made by scripts/vendor_codemirror.sh."
  echo "Packages bundled (name@version, licence):"
} > "$target/README.txt"
for dir in node_modules/@codemirror/* node_modules/@lezer/* node_modules/codemirror \
           node_modules/crelt node_modules/style-mod node_modules/w3c-keyname \
           node_modules/@marijn/*; do
  [ -f "$dir/package.json" ] || continue
  name="$(node -p "require('./$dir/package.json').name")"
  version="$(node -p "require('./$dir/package.json').version")"
  licence="$(node -p "require('./$dir/package.json').license || ''")"
  echo "  $name@$version ($licence)" >> "$target/README.txt"
  for file in "$dir"/LICENSE*; do
    [ -f "$file" ] || continue
    cp "$file" "$target/licenses/$(echo "$name" | tr '/@' '__' | sed 's/^_//').LICENSE"
  done
done
echo "Wrote $target"
