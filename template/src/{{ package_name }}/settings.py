"""The service's configuration: environment variables only, read once at startup.

Each behaviour has its own variable; there is no per-environment settings file or switch.
Every secret can also be given as NAME_FILE, the path of a mounted secret file.
"""

import os
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

# The value .env.example ships with; a service started with it would be open to anyone.
PLACEHOLDER_SECRET = "change-me"  # noqa: S105 - the value refused, not a secret


class UnreadableSecretFile(str):
    """Stands for a NAME_FILE that could not be read, so validation reports it with the rest."""


class SecretFilesSource(PydanticBaseSettingsSource):
    """Reads each secret field from the file named by its NAME_FILE variable."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        path = os.environ.get(f"{field_name.upper()}_FILE")
        if path is None or field.annotation is not SecretStr:
            return None, field_name, False
        try:
            return Path(path).read_text().strip(), field_name, False
        except OSError as error:
            return UnreadableSecretFile(f"{path}: {error.strerror}"), field_name, False

    def __call__(self) -> dict[str, Any]:
        values = {}
        for field_name, field in self.settings_cls.model_fields.items():
            value, _, _ = self.get_field_value(field, field_name)
            if value is not None:
                values[field_name] = value
        return values


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        # Secrets must never be echoed into logs by a validation error.
        hide_input_in_errors=True,
        extra="ignore",
    )

    secret_key: Annotated[SecretStr, Field(min_length=32)]
    debug: bool = False
    port: Annotated[int, Field(ge=1, le=65535)] = 8000
    web_concurrency: Annotated[int, Field(ge=1)] = 1
    # How long a stopping web process lets in-flight requests finish.
    shutdown_grace_seconds: Annotated[int, Field(ge=1)] = 20
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["json", "console"] = "json"

    @field_validator("secret_key", mode="before")
    @classmethod
    def refuse_unreadable_and_placeholder(cls, value: object) -> object:
        if isinstance(value, UnreadableSecretFile):
            raise ValueError(f"cannot read the secret file {value}")
        if isinstance(value, str) and value.strip() == PLACEHOLDER_SECRET:
            raise ValueError("is still the placeholder from .env.example; set a real secret")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment first, then NAME_FILE; never a dotenv file or a secrets directory.
        return init_settings, env_settings, SecretFilesSource(settings_cls)


def describe_errors(error: ValidationError) -> str:
    """One message naming every environment variable at fault."""
    problems = []
    for item in error.errors():
        variable = str(item["loc"][0]).upper() if item["loc"] else "(settings)"
        reason = "is required but not set" if item["type"] == "missing" else item["msg"]
        problems.append(f"  {variable}: {reason}")
    return "Invalid configuration; fix these environment variables:\n" + "\n".join(problems)


def load_settings() -> Settings:
    """Read the settings, or stop the process with one message listing every problem."""
    try:
        return Settings()
    except ValidationError as error:
        sys.exit(describe_errors(error))
