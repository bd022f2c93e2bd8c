"""The README documents every setting (datasette-style: fails when one is missing)."""
from pathlib import Path

from app.config import Settings

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def env_name(name, field) -> str:
    alias = field.validation_alias
    if alias is not None:
        return alias.choices[0]
    return f"RETOUCH_{name.upper()}"


def test_every_setting_is_in_the_readme():
    missing = [env_name(n, f) for n, f in Settings.model_fields.items() if f"`{env_name(n, f)}`" not in README]
    assert missing == [], f"undocumented settings: {missing}"


def test_readme_shows_the_two_commands_first():
    first_block = README.split("```sh", 1)[1].split("```", 1)[0]
    assert "make serve" in first_block and "make test" in first_block
