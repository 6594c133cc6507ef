"""The guard's thresholds and weights: one validated TOML file, never constants in code.

The default file ships in the package (``default.toml``); an operator's file
must give every key (unknown keys are refused, so that a typo cannot silently
leave a default in force). Errors name the key:

>>> try:
...     load_config_text("[velocity]\\nscales = 3")
... except GuardConfigError as exc:
...     print(str(exc).split(";")[0])
guard configuration <text>: velocity.scales: Input should be a valid tuple
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = [
    "BudgetConfig",
    "CampaignConfig",
    "ConcurrencyConfig",
    "ConversionConfig",
    "EnumerationConfig",
    "GuardConfig",
    "GuardConfigError",
    "HoursConfig",
    "LearningConfig",
    "NetworkConfig",
    "VelocityConfig",
    "WeightsConfig",
    "default_config",
    "load_config",
    "load_config_text",
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VelocityConfig(_Section):
    scales: tuple[int, ...] = Field(min_length=1)
    floor: tuple[float, ...] = Field(min_length=1)
    peak_factor: float = Field(ge=1.0)
    deny_factor: float = Field(gt=1.0)
    home_pace: float = Field(ge=1.0)

    @model_validator(mode="after")
    def _aligned(self) -> Self:
        if len(self.floor) != len(self.scales):
            raise ValueError("floor needs one value per scale")
        if any(s <= 0 for s in self.scales) or list(self.scales) != sorted(set(self.scales)):
            raise ValueError("scales must be positive and strictly increasing")
        if any(f <= 0 for f in self.floor):
            raise ValueError("floor values must be positive")
        return self


class BudgetConfig(_Section):
    factor: float = Field(gt=0)
    margin: float = Field(ge=0)
    min: float = Field(gt=0)
    max: float = Field(gt=0)
    deny_factor: float = Field(gt=1.0)
    surge_factor: float = Field(ge=1.0)
    surge_accounts: int = Field(ge=2)
    surge_share: float = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.max < self.min:
            raise ValueError("max must be at least min")
        return self


class WeightsConfig(_Section):
    far_patient: float = Field(ge=0)
    new_network: float = Field(ge=0)
    new_device: float = Field(ge=0)
    off_hours: float = Field(ge=0)
    campaign: float = Field(ge=0)
    low_conversion: float = Field(ge=0)


class NetworkConfig(_Section):
    ipv4_prefix: int = Field(ge=8, le=32)
    ipv6_prefix: int = Field(ge=16, le=128)
    known_after: int = Field(ge=1)
    first_contact: bool


class EnumerationConfig(_Section):
    scale: int = Field(gt=0)
    min_count: float = Field(gt=0)
    step_up_share: float = Field(gt=0, le=1)
    deny_count: float = Field(gt=0)
    deny_share: float = Field(gt=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.deny_count < self.min_count or self.deny_share < self.step_up_share:
            raise ValueError("the deny thresholds must be at least the step-up ones")
        return self


class CampaignConfig(_Section):
    min_units: int = Field(ge=1)
    popular_units: int = Field(ge=1)
    step_up_units: int = Field(ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.step_up_units < self.min_units:
            raise ValueError("step_up_units must be at least min_units")
        return self


class ConcurrencyConfig(_Section):
    window: int = Field(gt=0)
    span: int = Field(gt=0)
    min_lookups: int = Field(ge=1)
    probation: int = Field(ge=0)
    refuse_for: int = Field(gt=0)
    deny_after: int = Field(ge=1)


class ConversionConfig(_Section):
    horizon: int = Field(gt=0)
    scale: int = Field(gt=0)
    min_matured: float = Field(gt=0)
    ratio: float = Field(gt=0, le=1)


class HoursConfig(_Section):
    share: float = Field(ge=0, lt=1)
    min_lookups: int = Field(ge=1)


class LearningConfig(_Section):
    min_days: int = Field(ge=1)
    peer_min_accounts: int = Field(ge=1)
    high_decay: float = Field(gt=0, le=1)


class GuardConfig(_Section):
    """Every threshold and weight of the guard (see ``default.toml`` for their meaning)."""

    velocity: VelocityConfig
    budget: BudgetConfig
    weights: WeightsConfig
    network: NetworkConfig
    enumeration: EnumerationConfig
    campaign: CampaignConfig
    concurrency: ConcurrencyConfig
    conversion: ConversionConfig
    hours: HoursConfig
    learning: LearningConfig


class GuardConfigError(ValueError):
    """A configuration file that cannot be used; the message names the file and the key."""


def _explain(source: str, exc: ValidationError) -> GuardConfigError:
    problems = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or "(top level)"
        problems.append(f"{key}: {error['msg']}")
    return GuardConfigError(f"guard configuration {source}: " + "; ".join(problems))


def _build(data: dict[str, Any], source: str) -> GuardConfig:
    try:
        return GuardConfig.model_validate(data)
    except ValidationError as exc:
        raise _explain(source, exc) from None


def load_config_text(text: str, source: str = "<text>") -> GuardConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise GuardConfigError(f"guard configuration {source}: not TOML ({exc})") from None
    return _build(data, source)


def load_config(path: Path | None = None) -> GuardConfig:
    """The configuration in ``path``, or the default shipped in the package."""
    if path is None:
        return default_config()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise GuardConfigError(f"guard configuration {path}: cannot be read ({exc})") from None
    return load_config_text(text, str(path))


def default_config() -> GuardConfig:
    text = resources.files("rempart.guard").joinpath("default.toml").read_text(encoding="utf-8")
    return load_config_text(text, "default.toml")
