"""Facts about VGG19 that both the preset checker and the TensorFlow model need (no TF here)."""

# Convolutions per block, as in Simonyan and Zisserman's configuration E.
BLOCKS = (2, 2, 4, 4, 4)
# Channels of every convolution in each block.
CHANNELS = (64, 128, 256, 512, 512)
# The layer names Keras uses; each is the ReLU output of that convolution.
LAYERS = tuple(f"block{b}_conv{c}" for b, n in enumerate(BLOCKS, 1) for c in range(1, n + 1))
# Keras's VGG19 preprocessing ("caffe" mode): RGB to BGR, then subtract the ImageNet means (BGR).
BGR_MEANS = (103.939, 116.779, 123.68)
