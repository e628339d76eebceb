#!/bin/sh
# test_notebooks.sh -- every notebook compiles (make check built it), runs in
# --quick mode and renders: no directive left unexpanded, every image link
# resolves, the index links every page.  TAP output.
set -u
src=${FPL_SRCDIR:-.} build=${FPL_BUILDDIR:-.}
out=$(mktemp -d /tmp/fplab-nb-XXXXXX)
trap 'rm -rf "$out"' EXIT
set -- ${FPL_NOTEBOOKS:-}
echo "1..$(($# * 2 + 4))"
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
    imgs=$(sed -n 's/.*](<\{0,1\}\([^)>]*\.png\)>\{0,1\}).*/\1/p' "$md" 2>/dev/null)
    while IFS= read -r img; do
        [ -z "$img" ] || [ -s "$out/$img" ] || bad=1
    done <<EOF_IMGS
$imgs
EOF_IMGS
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
# paths with "=" and spaces reach nbrender intact (awk would take an operand
# a=b/o.txt for an assignment), a figure directory may end in "/", and a
# caption's "]" and a link target's spaces are escaped
d="$out/a=b c"
mkdir -p "$d/my figs"
printf 'x\n' >"$d/my figs/f.png"
: >"$d/my figs/empty.png"
printf 'one\n' >"$d/o=1.txt"
printf '/*md\n# t\n@output\n@figure f.png see [1] here\n*/\n' >"$d/s=1.c"
nbr=$(cd "$src/scripts" && pwd)/nbrender
# relative paths: an operand "a=b c/o=1.txt" looks like an awk assignment
if (cd "$out" && sh "$nbr" "a=b c/s=1.c" "a=b c/o=1.txt" "a=b c/my figs/") >"$d/page" 2>"$out/err" &&
    grep -qx 'one' "$d/page" && grep -qxF '![see \[1\] here](<my figs/f.png>)' "$d/page"; then
    ok "nbrender reads paths with '=' and spaces and escapes the link"
else
    notok "nbrender with '=' and spaces in paths: $(cat "$out/err" "$d/page" | tr '\n' ' ')"
fi
# an empty figure file is not a drawn figure
printf '/*md\n# t\n@output\n@figure empty.png e\n*/\n' >"$d/s=1.c"
if sh "$src/scripts/nbrender" "$d/s=1.c" "$d/o=1.txt" "$d/my figs" >/dev/null 2>"$out/err"; then
    notok "nbrender accepted an empty figure"
else
    grep -q "empty.png was not drawn" "$out/err" && ok "nbrender refuses an empty figure" ||
        notok "nbrender's message: $(cat "$out/err")"
fi
