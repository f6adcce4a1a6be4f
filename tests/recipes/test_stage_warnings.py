"""A recipe stage keeps its operation's warnings: `srcompress run` shows them as the command itself does."""

from __future__ import annotations

from helpers.models import tiny_checkpoint

from sr_compress.recipes import parse_recipe, run_recipe


def test_truncate_stage_keeps_the_warnings_cached_or_not(tmp_path, invoke):
    model = tiny_checkpoint(tmp_path / "a.pt", "asrn")  # not trained with deep supervision: a warning
    data = {"out": str(tmp_path / "run"), "stage": [{"id": "cut", "kind": "truncate", "model": str(model),
                                                      "blocks": 1}]}
    ran = run_recipe(parse_recipe(data, source=tmp_path / "r.toml"))[0]
    assert ran.status == "ran" and ran.warnings and "deep supervision" in ran.warnings[0]
    cached = run_recipe(parse_recipe(data, source=tmp_path / "r.toml"))[0]
    assert cached.status == "cached" and cached.warnings == ran.warnings
    code, _, direct = invoke("truncate", model, "--blocks", "1", "-o", tmp_path / "k1.pt")
    assert code == 0 and ran.warnings[0] in " ".join(direct.split())
    (tmp_path / "r.toml").write_text(f'out = "{tmp_path / "run"}"\n[[stage]]\nid = "cut"\nkind = "truncate"\n'
                                     f'model = "{model}"\nblocks = 1\n')
    code, _, err = invoke("run", tmp_path / "r.toml")
    assert code == 0 and "cut: " + ran.warnings[0][:40] in " ".join(err.split())
