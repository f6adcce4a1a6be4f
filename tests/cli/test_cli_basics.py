def test_help_lists_commands(invoke):
    code, out, _ = invoke("--help")
    assert code == 0
    assert "Compress trained super-resolution" in out


def test_unknown_command_is_a_clean_error(invoke):
    code, _, err = invoke("frobnicate")
    assert code == 2
    assert err.strip() == "error: No such command 'frobnicate'. (see 'srcompress --help')"


def test_version_and_python_dash_m():
    import subprocess
    import sys

    from sr_compress import __version__

    out = subprocess.run([sys.executable, "-m", "sr_compress", "--version"], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == f"srcompress, version {__version__}"
