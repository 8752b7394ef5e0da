#!/usr/bin/awk -f
# Turns the small markdown subset of the man page sources (docs/man/*.md and
# docs/session-timeout.toml.5.md) into man(7) roff, for scripts/package.sh:
#
#   awk -v date=2026-12-01 -v version=0.1.0 -f scripts/md2man.awk timeoutd.8.md >timeoutd.8
#
# Understood: "# name(N)" (first line), "## SECTION", "### Subsection",
# paragraphs, ``` fenced blocks ```, "- " bullets, definition lists (a line,
# then lines starting ": " with "  " continuations), `code` (bold) and
# **bold** inline. Anything else is plain text.

function esc(s) {
    gsub(/\\/, "\\e", s)
    gsub(/-/, "\\-", s)
    return s
}
function inline(s,    out, i, c, code, bold) {
    s = esc(s)
    out = ""; code = 0; bold = 0
    for (i = 1; i <= length(s); i++) {
        c = substr(s, i, 1)
        if (c == "`") {
            out = out (code ? "\\fR" : "\\fB"); code = !code
        } else if (!code && substr(s, i, 2) == "**") {
            out = out (bold ? "\\fR" : "\\fB"); bold = !bold; i++
        } else {
            out = out c
        }
    }
    if (code || bold) out = out "\\fR"
    return out
}
function line_out(s) {
    # whatis(1) and lexgrog want "name \- description" in NAME.
    if (section == "NAME") sub(/ — /, " \\- ", s)
    # A line starting with . or ' would be read as a request.
    if (s ~ /^[.']/) s = "\\&" s
    print s
}
NR == 1 && /^# / {
    title = substr($0, 3)
    name = title; sub(/\(.*/, "", name)
    sect = title; sub(/^[^(]*\(/, "", sect); sub(/\).*/, "", sect)
    printf ".TH %s %s %s \"session-timeout %s\" \"session-timeout\"\n", toupper(esc(name)), sect, date, version
    next
}
/^```/ {
    if (!fenced) { print ".PP"; print ".RS 4"; print ".nf"; fenced = 1 }
    else { print ".fi"; print ".RE"; fenced = 0 }
    next
}
fenced { line_out(esc($0)); next }
/^## / { section = toupper(substr($0, 4)); print ".SH " inline(section); indef = 0; next }
/^### / { print ".SS " inline(substr($0, 5)); indef = 0; next }
/^[ \t]*$/ { blank = 1; next }
/^: / {
    # The body of a definition: the term was the line before.
    line_out(inline(substr($0, 3))); indef = 1; blank = 0; next
}
indef && /^  / && !blank { sub(/^ +/, ""); line_out(inline($0)); next }
/^- / {
    print ".IP \\(bu 2"; line_out(inline(substr($0, 3))); inlist = 1; blank = 0; indef = 0; next
}
inlist && /^  / && !blank { sub(/^ +/, ""); line_out(inline($0)); next }
{
    # A term is a line directly followed by a ": " line: look ahead.
    cur = $0
    if ((getline nxt) > 0) {
        if (nxt ~ /^: /) {
            print ".TP"; line_out(inline(cur))
            line_out(inline(substr(nxt, 3))); indef = 1; inlist = 0; blank = 0; next
        }
        if (blank || inlist || indef) print ".PP"
        blank = 0; inlist = 0; indef = 0
        line_out(inline(cur))
        # Hand the line read ahead to the rules above.
        $0 = nxt
        if ($0 ~ /^```/) { print ".PP"; print ".RS 4"; print ".nf"; fenced = 1; next }
        if ($0 ~ /^## /) { section = toupper(substr($0, 4)); print ".SH " inline(section); next }
        if ($0 ~ /^### /) { print ".SS " inline(substr($0, 5)); next }
        if ($0 ~ /^[ \t]*$/) { blank = 1; next }
        if ($0 ~ /^- /) { print ".IP \\(bu 2"; line_out(inline(substr($0, 3))); inlist = 1; next }
        line_out(inline($0))
        next
    }
    if (blank || inlist || indef) print ".PP"
    line_out(inline(cur))
}
