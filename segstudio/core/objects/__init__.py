"""Objects (instances): touching nuclei split apart, measured, edited one by one, and written to the files
QuPath, Fiji and napari read. numpy, OpenCV and scikit-image only: no Qt, no torch."""
