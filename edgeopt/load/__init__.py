"""Load stage: recognise model files and load Keras models safely."""
