#!/bin/sh
# test_notebooks.sh -- every notebook compiles (make check built it), runs in
# --quick mode and renders: no directive left unexpanded, every image link
# resolves, the index links every page.  TAP output.
set -u
src=${FPL_SRCDIR:-.} build=${FPL_BUILDDIR:-.}
out=$(mktemp -d /tmp/fplab-nb-XXXXXX)
trap 'rm -rf "$out"' EXIT
set -- ${FPL_NOTEBOOKS:-}
echo "1..$(($# * 2 + 2))"
n=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
notok() { n=$((n + 1)); echo "not ok $n - $1"; }
if sh "$src/scripts/notebooks" --quick "$src" "$build" "$out" "$@" 2>"$out/log"; then
    ok "scripts/notebooks --quick ran every notebook"
else
    notok "scripts/notebooks --quick failed: $(tail -n 3 "$out/log" | tr '\n' ' ')"
fi
for nb in "$@"; do
    md="$out/$nb.md"
    if [ -s "$md" ] && ! grep -q '^@output\|^@figure\|^/\*md\|^@@$' "$md"; then
        ok "$nb rendered with every directive expanded"
    else
        notok "$nb: page missing or a directive left in it"
    fi
    bad=0
    for img in $(sed -n 's/.*](\([^)]*\.png\)).*/\1/p' "$md" 2>/dev/null); do
        [ -s "$out/$img" ] || bad=1
    done
    if [ $bad = 0 ] && grep -q "^- \[.*\]($nb.md)" "$out/README.md" 2>/dev/null; then
        ok "$nb: figures present, linked from the index"
    else
        notok "$nb: a figure link does not resolve, or the index misses the page"
    fi
done
# the renderer refuses a page whose prose and output disagree
printf 'one\n@@\ntwo\n' >"$out/o.txt"
printf '/*md\n# t\n@output\n*/\nint x;\n' >"$out/s.c"
if sh "$src/scripts/nbrender" "$out/s.c" "$out/o.txt" "$out" >/dev/null 2>"$out/err" &&
    true; then
    notok "nbrender accepted a page that shows 1 of 2 output chunks"
else
    grep -q "2 output chunks" "$out/err" && ok "nbrender refuses unused output" ||
        notok "nbrender's message: $(cat "$out/err")"
fi
