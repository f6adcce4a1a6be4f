"""Documentation that must not drift from the code."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_cli_reference_is_up_to_date():
    from sr_compress.cli._docs import cli_reference

    assert (ROOT / "docs" / "cli.md").read_text() == cli_reference(), (
        "docs/cli.md is stale: run `python -m sr_compress.cli._docs > docs/cli.md`")


def test_every_command_has_an_example():
    from sr_compress.cli._docs import cli_reference

    sections = cli_reference().split("## srcompress ")[1:]
    assert len(sections) >= 7
    for section in sections:
        assert "Example" in section, section.splitlines()[0]


def test_readme_gives_the_two_commands_and_links_resolve():
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    import re

    for link in re.findall(r"\]\(((?:docs|export)/[^)#]+)\)", readme):
        assert (ROOT / link).exists(), link
