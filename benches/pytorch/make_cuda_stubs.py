"""Build no-op stub .so files for the CUDA libraries that the Linux x86_64
torch wheel of the default pip index links against, so a
`pip install --no-deps torch` imports and runs on CPU without the ~4 GB
nvidia-*/triton/cuda-* wheels.  Self-contained: symbol lists come from the
torch libraries' own undefined symbols (version tags name the lib).  Every
stub function returns 100 (cudaErrorNoDevice-like); never call CUDA.
Needs gcc, readelf, nm and ldconfig.  Does nothing when no library is missing
(a CPU-only torch build).
Usage: VENV/bin/python make_cuda_stubs.py      (installs stubs into torch/lib)"""
import subprocess, os, glob, re, sys, sysconfig, collections, tempfile
import importlib.util
torch_dir = os.path.dirname(importlib.util.find_spec("torch").origin)
lib_dir = os.path.join(torch_dir, "lib")
sofiles = glob.glob(os.path.join(lib_dir, "*.so*")) + glob.glob(os.path.join(torch_dir, "_C*.so"))
def run(*a): return subprocess.run(a, capture_output=True, text=True).stdout
present = set(os.listdir(lib_dir))
ldcache = {}
for line in run("ldconfig", "-p").splitlines()[1:]:
    m = re.match(r"\s*(\S+) .*=> (\S+)", line)
    if m and "x86-64" in line: ldcache.setdefault(m.group(1), m.group(2))
needed = set()
for f in sofiles:
    needed |= set(re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", run("readelf", "-d", f)))
missing = sorted(n for n in needed if n not in present and n not in ldcache)
print("missing libs:", missing)
defined = set()
for f in sofiles + [ldcache[n] for n in needed if n in ldcache and n not in present] + [sys.executable] + \
         glob.glob(os.path.join(sysconfig.get_config_var("LIBDIR") or "/nonexistent", "libpython3*.so*")):
    for line in run("nm", "-D", "--defined-only", f).splitlines():
        p = line.split()
        if len(p) >= 3: defined.add(p[-1].split("@")[0])
byver, unver = collections.defaultdict(set), set()
for f in sofiles:
    for line in run("nm", "-D", "--undefined-only", "--with-symbol-versions", f).splitlines():
        p = line.split()
        if len(p) < 2 or p[-2] != "U": continue   # skip weak ('w') refs
        name, _, ver = p[-1].partition("@")
        ver = ver.lstrip("@")
        if name in defined: continue
        if ver: byver[ver].add(name)
        else: unver.add(name)
known_ver = {n: n for n in missing}; known_ver["NVSHMEM"] = next((n for n in missing if "nvshmem" in n), None)
leftover = {v: s for v, s in byver.items() if v not in known_ver}
if leftover: print("WARNING unassigned versions:", {k: len(v) for k, v in leftover.items()})
print("unversioned unresolved symbols:", len(unver))
tmp = tempfile.mkdtemp()
for lib in missing:
    vers = {v: s for v, s in byver.items() if known_ver.get(v) == lib}
    syms = set().union(*vers.values()) if vers else set()
    syms |= unver          # unversioned: provide everywhere (harmless duplicates)
    c = ['static const char m[]="CUDA stub (CPU-only torch)";']
    for i, n in enumerate(sorted(syms)):
        if "ErrorString" in n or "ErrorName" in n or n.endswith("GetErrorString"):
            c.append(f'const char* f{i}(void) __asm__("{n}"); const char* f{i}(void){{return m;}}')
        else:
            c.append(f'long f{i}(void) __asm__("{n}"); long f{i}(void){{return 100;}}')
    src = os.path.join(tmp, lib + ".c"); open(src, "w").write("\n".join(c) + "\n")
    cmd = ["gcc", "-shared", "-fPIC", "-O1", "-o", os.path.join(lib_dir, lib), src, f"-Wl,-soname,{lib}"]
    if vers:
        mp = os.path.join(tmp, lib + ".map")
        open(mp, "w").write("".join(f"{v} {{ global: {'; '.join(sorted(s))}; }};\n" for v, s in vers.items()))
        cmd.append(f"-Wl,--version-script={mp}")
    subprocess.run(cmd, check=True)
    print(f"stub {lib}: {len(syms)} symbols, versions {list(vers)}")
