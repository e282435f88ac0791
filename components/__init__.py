"""rnnflow building blocks: plain Python + TF/Keras, never Prefect.

Nothing here runs at import time; heavy libraries are imported by the modules
that need them, so `import components.config.schema` stays cheap for the CLI.
"""
