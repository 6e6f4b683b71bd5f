"""Finding and building the stream models: every installed distribution's entry points in
the ``skyhive.models`` group (SkyHive's own two among them), the enabled ones built with
their options."""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

from skyhive.domain.stream_models import ENTRY_POINT_GROUP, StreamModel
from skyhive.models.config import ModelsConfig


class ModelPluginError(ValueError):
    """An enabled model that is not installed, or does not build."""


def installed() -> dict[str, EntryPoint]:
    """The stream models installed, by name."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def load_enabled(config: ModelsConfig) -> list[StreamModel]:
    """The models ``config.enabled`` names, built with their options, in that order."""
    found = installed()
    missing = [name for name in config.enabled if name not in found]
    if missing:
        raise ModelPluginError(
            f"stream models {missing} are not installed (entry point group "
            f"{ENTRY_POINT_GROUP!r} has {sorted(found)})"
        )
    models = []
    for name in dict.fromkeys(config.enabled):
        try:
            model: StreamModel = found[name].load()(config.options_for(name))
        except Exception as exc:
            raise ModelPluginError(f"stream model {name!r} did not build: {exc}") from exc
        if model.name != name:
            raise ModelPluginError(
                f"stream model {name!r} calls itself {model.name!r}: the entry point's name "
                "and the model's must be the same (it names its consumer group and its state)"
            )
        models.append(model)
    return models
