"""gradio_app for impasto."""
