"""ComfyUI entry point of the AID video-prediction extension.

ComfyUI imports this folder as a package from ``custom_nodes/`` and reads the two
mappings below. The library ``aid_model`` lives beside this file and is imported by its
absolute name, so this folder goes on ``sys.path`` (appended: ComfyUI's own top-level
modules, among them its ``nodes``, keep precedence). The node modules are imported
relatively for the same reason.
"""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.append(_HERE)

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: E402

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
