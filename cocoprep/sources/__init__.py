"""Sources: turn an input (COCO JSON, a class-per-folder tree) into a label map and records."""
