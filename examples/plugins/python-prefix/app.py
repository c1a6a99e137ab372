"""An esox transformer written in Python: prefixes every key.

Config (JSON): {"prefix": "APP_"}. Built into a WebAssembly component with componentize-py
against esox's WIT contract (wit/plugin.wit, world transformer-plugin).
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports.types import Entry, PluginError


class Transformer(exports.Transformer):
    def transform(self, input, config):
        try:
            cfg = json.loads(config or "{}")
        except ValueError as e:
            raise Err(PluginError(message=f"config is not JSON: {e}", key=None))
        prefix = cfg.get("prefix", "")
        if not isinstance(prefix, str):
            raise Err(PluginError(message="prefix must be a string", key=None))
        return [Entry(key=prefix + e.key, value=e.value) for e in input]
