def test_help_lists_commands(invoke):
    code, out, _ = invoke("--help")
    assert code == 0
    assert "Compress trained super-resolution" in out


def test_unknown_command_is_a_clean_error(invoke):
    code, _, err = invoke("frobnicate")
    assert code == 2
    assert err.strip() == "error: No such command 'frobnicate'. (see 'srcompress --help')"
