# Runs INSIDE the target interpreter (``python -c <this source>``), on CPython 2.7 to 3.13
# and PyPy: keep it 2.7 syntax (no f-strings, no annotations) and stdlib only.
#
# It prints one JSON object (ASCII only) after a marker line, because a .pth file run by
# `site` may print to stdout before this code starts; envpack reads what follows the last
# marker. Every optional fact is guarded: a missing sysconfig var or an odd platform gives
# null, never a crash.
import codecs
import json
import os
import platform
import sys

MARKER = "@@envpack-interpreter-probe@@"
PY2 = sys.version_info[0] == 2


def _percent(err):
    bad = bytearray(err.object[err.start : err.end])
    return "".join("%%%02X" % byte for byte in bad), err.end


codecs.register_error("envpack-percent", _percent)


def text(value):
    """A path as envpack records it (envpack.fsnames): bytes that are not UTF-8 as %XX.

    A name that is valid UTF-8 and holds no "%" is unchanged; otherwise each "%" becomes
    "%25" and each undecodable byte "%XX", so the recorded text is lossless.
    """
    if value is None:
        return None
    if PY2 and isinstance(value, unicode):  # noqa: F821 - Python 2 only
        raw = value.encode("utf-8")
    elif PY2:
        raw = value
    else:
        try:
            raw = value.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            raw = value.encode("utf-8", "surrogatepass")
    return raw.replace(b"%", b"%25").decode("utf-8", "envpack-percent")


def config_var(name):
    try:
        import sysconfig

        return sysconfig.get_config_var(name)
    except Exception:
        return None


def get_platform():
    try:
        import sysconfig

        return sysconfig.get_platform()
    except Exception:
        return None


def implementation_name():
    impl = getattr(sys, "implementation", None)
    if impl is not None:
        return impl.name
    return platform.python_implementation().lower()


def format_full_version(info):
    version = "%d.%d.%d" % (info[0], info[1], info[2])
    if info[3] != "final":
        version += info[3][0] + str(info[4])
    return version


def python_full_version():
    try:
        return platform.python_version()
    except Exception:  # an unusual sys.version platform cannot parse
        return format_full_version(sys.version_info).replace("c", "rc")


def marker_environment():
    # PEP 508's reference code: on Python 2 there is no sys.implementation, and the
    # markers are then "" and "0" (that is what pip evaluates there).
    impl = getattr(sys, "implementation", None)
    if impl is not None:
        impl_name = impl.name
        impl_version = format_full_version(impl.version)
    else:
        impl_name = ""
        impl_version = "0"
    try:
        tup = platform.python_version_tuple()
        short = "%s.%s" % (tup[0], tup[1])
    except Exception:
        short = "%d.%d" % sys.version_info[:2]
    return {
        "implementation_name": impl_name,
        "implementation_version": impl_version,
        "os_name": os.name,
        "platform_machine": platform.machine(),
        "platform_release": platform.release(),
        "platform_system": platform.system(),
        "platform_version": platform.version(),
        "python_full_version": python_full_version(),
        "platform_python_implementation": platform.python_implementation(),
        "python_version": short,
        "sys_platform": sys.platform,
    }


def version_nodot():
    nodot = config_var("py_version_nodot")
    if nodot:
        return str(nodot)
    return "%d%d" % sys.version_info[:2]


SHORT_NAMES = {"cpython": "cp", "pypy": "pp", "ironpython": "ip", "jython": "jy"}


def interpreter_tag(impl):
    return SHORT_NAMES.get(impl, impl) + version_nodot()


def abi_tag(impl, soabi):
    # The same rules as packaging.tags: the SOABI when there is one, else (CPython 2.7)
    # the d/m/u flags from the build configuration.
    if soabi:
        parts = soabi.split("-")
        if impl == "cpython" and soabi.startswith("cpython-") and len(parts) > 1:
            return "cp" + parts[1]
        return soabi.replace(".", "_").replace("-", "_")
    if impl != "cpython":
        return None
    flags = ""
    if config_var("Py_DEBUG") or hasattr(sys, "gettotalrefcount"):
        flags += "d"
    if sys.version_info < (3, 8) and config_var("WITH_PYMALLOC") in (1, None):
        flags += "m"
    unicode_size = config_var("Py_UNICODE_SIZE")
    if sys.version_info < (3, 3) and (unicode_size == 4 or sys.maxunicode == 0x10FFFF):
        flags += "u"
    return "cp" + version_nodot() + flags


def has_metadata(folder):
    try:
        names = os.listdir(folder)
    except Exception:
        return False
    for name in names:
        if name.endswith(".dist-info") or name.endswith(".egg-info"):
            return True
    return False


def site_dirs():
    known = set()
    try:
        import site

        if hasattr(site, "getsitepackages"):
            known.update(site.getsitepackages())
        if getattr(site, "ENABLE_USER_SITE", False) and hasattr(site, "getusersitepackages"):
            known.add(site.getusersitepackages())
    except Exception:
        pass
    try:
        import sysconfig

        paths = sysconfig.get_paths()
        known.add(paths.get("purelib"))
        known.add(paths.get("platlib"))
    except Exception:
        pass
    return set(os.path.normpath(d) for d in known if d)


def main():
    path = list(sys.path)
    # `-c` puts "" (the probe's temporary cwd) first; it is not part of the app's path.
    if path and path[0] in ("", os.getcwd()):
        path = path[1:]
    impl = implementation_name()
    soabi = config_var("SOABI") or None
    ext_suffix = config_var("EXT_SUFFIX")
    if not ext_suffix and PY2:
        ext_suffix = config_var("SO")  # 3.x warns about SO; 2.7 only has SO
    prefix = sys.prefix
    base_prefix = getattr(sys, "real_prefix", None) or getattr(sys, "base_prefix", prefix)
    known = site_dirs()
    site_packages = []
    for entry in path:
        if not entry or not os.path.isdir(entry) or entry in site_packages:
            continue
        if os.path.normpath(entry) in known or has_metadata(entry):
            site_packages.append(entry)
    info = sys.version_info
    result = {
        "implementation": impl,
        "version": python_full_version(),
        "version_info": [info[0], info[1], info[2], info[3], info[4]],
        "executable": text(sys.executable),
        "real_executable": text(os.path.realpath(sys.executable)) if sys.executable else None,
        "prefix": text(prefix),
        "base_prefix": text(base_prefix),
        "virtualenv": os.path.normpath(prefix) != os.path.normpath(base_prefix),
        "platform": get_platform(),
        "soabi": soabi,
        "ext_suffix": ext_suffix or None,
        "abi_tag": abi_tag(impl, soabi),
        "interpreter_tag": interpreter_tag(impl),
        "sys_path": [text(p) for p in path],
        "site_packages": [text(p) for p in site_packages],
        "markers": marker_environment(),
    }
    sys.stdout.write("\n" + MARKER + "\n" + json.dumps(result, sort_keys=True) + "\n")
    sys.stdout.flush()


main()
