"""ComfyUI entry point of the AID video-prediction extension.

ComfyUI imports this folder as a package from ``custom_nodes/`` and reads the two
mappings below. The nodes arrive with the node issue; until then the mappings are empty
so that the extension loads cleanly.
"""

NODE_CLASS_MAPPINGS: dict[str, type] = {}
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
