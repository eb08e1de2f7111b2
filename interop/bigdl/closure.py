#!/usr/bin/env python3
"""The upstream files scalac needs to compile some BigDL files.

usage: closure.py SEARCH_DIRS... -- TARGET_FILES...   (run in an extracted
BigDL tree, paths relative to its top)

scalac compiles whole files and finds a symbol by file name only on its
-sourcepath, while dllib defines many objects in files named otherwise
(NormMode in nn/SoftmaxWithCriterion.scala), so the files are listed. This
prints, sorted, the target files and every .scala/.java file under
SEARCH_DIRS they need transitively, by name visibility: a file needs the
files defining a top-level name it mentions that is in its own package,
imported by name or by wildcard, or written as a qualified path. It errs on
the side of too many files (a mention in any scope counts). WHY=File.scala
prints to stderr the chain of files that pulled that one in.

What it cannot see is listed by hand in interop/bigdl/sources.txt (a file
that only makes an imported package exist).
"""
import os, re, sys

args = sys.argv[1:]
sep = args.index('--')
roots, targets = args[:sep], args[sep + 1:]

ident = re.compile(r'[A-Za-z_][A-Za-z0-9_]*')
defre = re.compile(r'^(?:(?:private(?:\[\w+\])?|protected(?:\[\w+\])?|sealed|abstract|final|case|implicit|lazy|public|static)\s+)*'
                   r'(class|object|trait|type|val|var|def|interface|enum)\s+([A-Za-z_][A-Za-z0-9_]*)')


def strip(text):
    tok = re.compile(r'"""(?:.|\n)*?"""|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])\'|/\*(?:.|\n)*?\*/|//[^\n]*')
    def rep(m):
        t = m.group(0)
        if t.startswith('/*'):
            return '\n' * t.count('\n')
        if t.startswith('//'):
            return ' '
        return '""'
    return tok.sub(rep, text)


class F:
    pass


files = {}


def parse(path):
    f = F()
    f.path = path
    t = strip(open(path, encoding='utf-8', errors='replace').read())
    f.text = t
    pkgs = []  # chained package clauses
    f.defs = set()  # (pkg, name)
    f.imports = []  # (path, selectors or '_')
    cur = ''
    for line in t.split('\n'):
        m = re.match(r'^package\s+object\s+(\w+)', line)
        if m:
            f.pkgobj = cur + '.' + m.group(1) if cur else m.group(1)
            inobj = True
            continue
        m2 = re.match(r'^  (?:(?:private(?:\[\w+\])?|implicit|lazy|final|case|sealed|abstract)\s+)*(class|object|trait|type|val|var|def)\s+([A-Za-z_]\w*)', line)
        if m2 and getattr(f, 'pkgobj', None):
            f.defs.add((f.pkgobj, m2.group(2)))
        m = re.match(r'^package\s+([\w.]+)\s*;?\s*$', line)
        if m:
            cur = cur + '.' + m.group(1) if cur else m.group(1)
            pkgs.append(cur)
            continue
        m = defre.match(line)
        if m:
            f.defs.add((cur, m.group(2)))
    f.pkg = cur
    f.visible_pkgs = set(pkgs) or {''}
    for m in re.finditer(r'\bimport\s+(?:static\s+)?([\w.]+)(?:\.(\{[^}]*\}|_|\*|\w+))\s*;?', t):
        base, sel = m.group(1), m.group(2)
        if sel in ('_', '*'):
            f.imports.append((base, '_'))
        elif sel.startswith('{'):
            names = []
            for part in sel[1:-1].split(','):
                part = part.strip()
                n = part.split('=>')[0].strip()
                if n == '_':
                    f.imports.append((base, '_'))
                elif n:
                    names.append(n)
            f.imports.append((base, names))
        else:
            f.imports.append((base, [sel]))
    f.tokens = set(ident.findall(t))
    f.dotted = set(re.findall(r'(?<![\w.])[A-Za-z_]\w*(?:\s*\.\s*[A-Za-z_]\w*)+', t))
    f.dotted = set(re.sub(r'\s+', '', d) for d in f.dotted)
    return f


for r in roots:
    for d, _, ns in os.walk(r):
        for n in ns:
            if n.endswith('.scala') or n.endswith('.java'):
                p = os.path.join(d, n)
                files[p] = parse(p)
for tpath in targets:
    if tpath not in files:
        files[tpath] = parse(tpath)

bydef = {}  # fq name -> set(files)
pkgobjs = {}  # package fq -> files of package objects
for f in files.values():
    for (p, n) in f.defs:
        fq = p + '.' + n if p else n
        bydef.setdefault(fq, set()).add(f.path)
    if hasattr(f, 'pkgobj'):
        pkgobjs.setdefault(f.pkgobj, set()).add(f.path)
packages = set()
for fq in bydef:
    parts = fq.split('.')
    for i in range(1, len(parts)):
        packages.add('.'.join(parts[:i]))


def deps(f):
    out = set()
    scopes = set()  # packages/objects whose members are visible by simple name
    for p in f.visible_pkgs:
        scopes.add(p)
    for base, sel in f.imports:
        # base may be a package or an object path; its owner file(s) too
        out |= bydef.get(base, set())
        parts = base.split('.')
        for i in range(1, len(parts) + 1):
            out |= bydef.get('.'.join(parts[:i]), set())
        if sel == '_':
            scopes.add(base)
        else:
            for n in sel:
                out |= bydef.get(base + '.' + n, set())
    for s in scopes:
        for tok in f.tokens:
            out |= bydef.get(s + '.' + tok, set())
    named = {}
    for base, sel in f.imports:
        if sel != '_':
            for n in sel:
                named.setdefault(n, set()).add(base + '.' + n)
    for d in f.dotted:
        head, _, rest = d.partition('.')
        cands = {d} | {p + '.' + rest for p in named.get(head, ())} | {s + '.' + d for s in scopes}
        for c in cands:
            parts = c.split('.')
            for i in range(2, len(parts) + 1):
                out |= bydef.get('.'.join(parts[:i]), set())
    out.discard(f.path)
    return out


seen = set(targets)
todo = list(targets)
while todo:
    f = files[todo.pop()]
    for d in deps(f):
        if d not in seen:
            seen.add(d)
            todo.append(d)
for p in sorted(seen):
    print(p)
if os.environ.get('WHY'):
    # BFS parents
    parent = {}
    q = list(targets)
    seen2 = set(targets)
    while q:
        x = q.pop(0)
        for d in deps(files[x]):
            if d not in seen2:
                seen2.add(d); parent[d] = x; q.append(d)
    for w in os.environ['WHY'].split(','):
        p = [k for k in parent if k.endswith(w)]
        for k in p:
            chain = [k]
            while chain[-1] in parent:
                chain.append(parent[chain[-1]])
            print('WHY', ' <- '.join(c.rsplit('/', 1)[-1] for c in chain), file=sys.stderr)
