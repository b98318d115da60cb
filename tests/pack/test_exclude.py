"""Default exclusion rules: only the standard library's tests, never a package's."""

from __future__ import annotations

from envpack.pack.exclude import NOT_SHIPPED, ExcludeRules

STDLIB = "/opt/py/lib/python3.11"
RULES = ExcludeRules(stdlib=[STDLIB], site_packages=["/venv/lib/python3.11/site-packages"])


def test_stdlib_tests_and_tools() -> None:
    assert RULES(f"{STDLIB}/test/", 0) == "standard library tests"
    assert RULES(f"{STDLIB}/ctypes/test/test_x.py", 10) == "standard library tests"
    assert RULES(f"{STDLIB}/idlelib/", 0) == "idlelib (IDLE)"
    assert (RULES(f"{STDLIB}/ensurepip/", 0) or "").startswith("ensurepip")
    assert RULES(f"{STDLIB}/tkinter/", 0) == "tkinter (no Tk library)"
    assert RULES(f"{STDLIB}/lib-dynload/_tkinter.cpython-311-x86_64-linux-gnu.so", 5)
    assert RULES(f"{STDLIB}/unittest/__init__.py", 10) is None
    assert RULES(f"{STDLIB}/test.py", 10) is None


def test_third_party_tests_are_kept() -> None:
    assert RULES("/venv/lib/python3.11/site-packages/pkg/tests/__init__.py", 1) is None
    assert RULES("/venv/lib/python3.11/site-packages/pkg/test/", 0) is None


def test_unused_base_site_packages_is_not_listed() -> None:
    assert RULES(f"{STDLIB}/site-packages/", 0) == NOT_SHIPPED


def test_tk_present_keeps_tkinter() -> None:
    rules = ExcludeRules(stdlib=[STDLIB], tk_present=True)
    assert rules(f"{STDLIB}/tkinter/", 0) is None


def test_static_headers_man_and_globs() -> None:
    rules = ExcludeRules(globs=["*/docs/*", "/app/big.bin"])
    assert rules("/usr/lib/libfoo.a", 5) == "static library"
    assert rules("/venv/include/site/python3.11/x.h", 5) == "C header"
    assert rules("/usr/share/man/man1/x.1.gz", 5) == "man page"
    assert rules("/app/docs/index.html", 5) == "--exclude */docs/*"
    assert rules("/app/big.bin", 5) == "--exclude /app/big.bin"
    assert rules("/app/main.py", 5) is None
