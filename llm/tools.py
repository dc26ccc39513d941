"""Anthropic provider tools: server-defined tools passed through as their JSON definition."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Literal

from livekit.agents.llm import ProviderTool

ComputerToolVersion = Literal["computer_20251124", "computer_20250124"]

_TOOL_VERSION_BETA_FLAGS: dict[str, str] = {
    "computer_20251124": "computer-use-2025-11-24",
    "computer_20250124": "computer-use-2025-01-24",
}


class AnthropicTool(ProviderTool, ABC):
    """A tool that Anthropic defines; `to_dict()` is its entry in the request's `tools`."""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]: ...

    @property
    def beta_flag(self) -> str | None:
        return None


@dataclass
class ComputerUse(AnthropicTool):
    display_width_px: int = 1280
    display_height_px: int = 720
    display_number: int = 1
    tool_version: str = "computer_20251124"
    enable_zoom: bool = False

    def __post_init__(self) -> None:
        super().__init__(id="computer")
        if self.tool_version not in _TOOL_VERSION_BETA_FLAGS:
            raise ValueError(
                f"unknown computer tool version {self.tool_version!r}; "
                f"expected one of {sorted(_TOOL_VERSION_BETA_FLAGS)}"
            )
        if self.enable_zoom and self.tool_version != "computer_20251124":
            raise ValueError("enable_zoom needs tool_version 'computer_20251124'")

    @property
    def beta_flag(self) -> str | None:
        return _TOOL_VERSION_BETA_FLAGS.get(self.tool_version)

    def to_dict(self) -> dict[str, Any]:
        definition: dict[str, Any] = {
            "type": self.tool_version,
            "name": "computer",
            "display_width_px": self.display_width_px,
            "display_height_px": self.display_height_px,
            "display_number": self.display_number,
        }
        if self.enable_zoom:
            definition["enable_zoom"] = True
        return definition
