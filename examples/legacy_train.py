"""The 2018 tutorial's ``train.py`` (Keras 2, ``fit_generator``), run on Keras 3.

Everything below the imports is the tutorial's script as it was written for
Keras 2: a CSV generator with a ``mode``, ``LabelBinarizer``,
``ImageDataGenerator.flow`` inside the generator, ``MiniVGGNet``,
``SGD(lr=…, decay=…)``, ``model.fit_generator``, ``model.predict_generator``
and a plot of ``H.history["acc"]``. What changed, and nothing else:

* the imports: ``keras.*`` → ``fitlab.compat``, ``pyimagesearch.minivggnet``
  → ``fitlab``, plus one call to ``enable_legacy_methods()``;
* ``csv_image_generator`` is imported from ``fitlab`` instead of
  being defined here: same signature and behaviour, minus the tutorial's two
  eval-mode bugs (it dropped a row after rewinding the file, and yielded an
  empty batch when the row count divided by the batch size);
* the tutorial's constants (CSV paths, epochs, output plot) come from the
  command line, and the image size too, so a test can run it on tiny images.

Run it on the real data (``python -m fitlab data`` writes the CSVs)::

    python examples/legacy_train.py --train flowers17_training.csv \\
        --test flowers17_testing.csv --epochs 75 --plot plot.png
"""

# set the matplotlib backend so figures can be saved in the background
import matplotlib

matplotlib.use("Agg")

# import the necessary packages
import argparse  # noqa: E402  (the tutorial's imports follow matplotlib.use)

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import classification_report  # noqa: E402
from sklearn.preprocessing import LabelBinarizer  # noqa: E402

# 2018: from pyimagesearch.minivggnet import MiniVGGNet; csv_image_generator defined here
from fitlab import MiniVGGNet, csv_image_generator  # noqa: E402

# 2018: from keras.preprocessing.image import ImageDataGenerator
# 2018: from keras.optimizers import SGD
from fitlab.compat import SGD, ImageDataGenerator, enable_legacy_methods  # noqa: E402

enable_legacy_methods()  # model.fit_generator / predict_generator, as in Keras 2

# the tutorial's constants, now arguments
ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--train", default="flowers17_training.csv", help="training CSV")
ap.add_argument("--test", default="flowers17_testing.csv", help="testing CSV")
ap.add_argument("--epochs", type=int, default=75, help="epochs to train")
ap.add_argument("--plot", default="plot.png", help="where to save the loss/accuracy plot")
ap.add_argument("--size", type=int, default=64, help="image width = height in the CSVs")
args = vars(ap.parse_args())

# initialize the paths to our training and testing CSV files
TRAIN_CSV = args["train"]
TEST_CSV = args["test"]

# initialize the number of epochs to train for and batch size
NUM_EPOCHS = args["epochs"]
BS = 32

# initialize the total number of training and testing image
NUM_TRAIN_IMAGES = 0
NUM_TEST_IMAGES = 0

# open the training CSV file, then initialize the unique set of class
# labels in the dataset along with the testing labels
f = open(TRAIN_CSV)
labels = set()
testLabels = []

# loop over all rows of the CSV file
for line in f:
    # extract the class label, update the labels list, and increment
    # the total number of training images
    label = line.strip().split(",")[0]
    labels.add(label)
    NUM_TRAIN_IMAGES += 1

# close the training CSV file and open the testing CSV file
f.close()
f = open(TEST_CSV)

# loop over the lines in the testing file
for line in f:
    # extract the class label, update the test labels list, and
    # increment the total number of testing images
    label = line.strip().split(",")[0]
    testLabels.append(label)
    NUM_TEST_IMAGES += 1

# close the testing CSV file
f.close()

# create the label binarizer for one-hot encoding labels, then encode
# the testing labels
lb = LabelBinarizer()
lb.fit(list(labels))
testLabels = lb.transform(testLabels)

# construct the training image generator for data augmentation
aug = ImageDataGenerator(
    rotation_range=20,
    zoom_range=0.15,
    width_shift_range=0.2,
    height_shift_range=0.2,
    shear_range=0.15,
    horizontal_flip=True,
    fill_mode="nearest",
)

# initialize both the training and testing image generators
trainGen = csv_image_generator(TRAIN_CSV, BS, lb, mode="train", aug=aug)
testGen = csv_image_generator(TEST_CSV, BS, lb, mode="train", aug=None)

# initialize our Keras model and compile it
model = MiniVGGNet.build(args["size"], args["size"], 3, len(lb.classes_))
opt = SGD(lr=1e-2, momentum=0.9, decay=1e-2 / NUM_EPOCHS)
model.compile(loss="categorical_crossentropy", optimizer=opt, metrics=["accuracy"])

# train the network
print("[INFO] training w/ generator...")
H = model.fit_generator(
    trainGen,
    steps_per_epoch=NUM_TRAIN_IMAGES // BS,
    validation_data=testGen,
    validation_steps=NUM_TEST_IMAGES // BS,
    epochs=NUM_EPOCHS,
)

# re-initialize our testing data generator, this time for evaluating
testGen = csv_image_generator(TEST_CSV, BS, lb, mode="eval", aug=None)

# make predictions on the testing images, finding the index of the
# label with the corresponding largest predicted probability
predIdxs = model.predict_generator(testGen, steps=(NUM_TEST_IMAGES // BS) + 1)
predIdxs = np.argmax(predIdxs, axis=1)

# show a nicely formatted classification report
print("[INFO] evaluating network...")
print(classification_report(testLabels.argmax(axis=1), predIdxs, target_names=lb.classes_))

# plot the training loss and accuracy
N = NUM_EPOCHS
plt.style.use("ggplot")
plt.figure()
plt.plot(np.arange(0, N), H.history["loss"], label="train_loss")
plt.plot(np.arange(0, N), H.history["val_loss"], label="val_loss")
plt.plot(np.arange(0, N), H.history["acc"], label="train_acc")
plt.plot(np.arange(0, N), H.history["val_acc"], label="val_acc")
plt.title("Training Loss and Accuracy on Dataset")
plt.xlabel("Epoch #")
plt.ylabel("Loss/Accuracy")
plt.legend(loc="lower left")
plt.savefig(args["plot"])
