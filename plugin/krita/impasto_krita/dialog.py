"""The settings dialog: style images, preset, what a selection means, output size, steps, style
strength, colour preservation and seed. It asks the engine for the preset list (never a
hard-coded one) and for each preset's recipe, so the defaults it shows are the ones the engine
will use."""

from __future__ import annotations

import json
import logging
import os

from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from . import impasto_client as client

log = logging.getLogger(__name__)

IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.webp *.tif *.tiff *.bmp);;All files (*)"
PRESERVE_LABELS = (
    (None, "As the preset says"),
    ("none", "No: take the painting's colours"),
    ("luminance", "Luminance: keep the photo's colours"),
    ("histogram", "Histogram: match the photo's colour spread"),
)


class StyleDialog(QDialog):
    """Modal; read the job with settings() after exec_() returns Accepted."""

    def __init__(
        self,
        engine: list,
        canvas_size: tuple,
        last: dict | None = None,
        parent=None,
        selection_box: tuple | None = None,
    ):
        """canvas_size: the document's (w, h); selection_box: the size of the selection's bounds
        when there is a selection (then the dialog asks what the selection means)."""
        super().__init__(parent)
        self.engine = engine
        # The region each selection mode paints, for the default output size.
        self.region_sizes = {"mask": canvas_size, "crop": selection_box or canvas_size}
        self._recipes: dict = {}
        self._steps_edited = False
        self._size_edited = False
        self.setWindowTitle("Stylise with impasto")
        self.setMinimumWidth(460)

        self.styles = QListWidget()
        self.styles.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.styles.setMaximumHeight(90)
        add = QPushButton("Add\u2026")
        add.clicked.connect(self._add_styles)
        remove = QPushButton("Remove")
        remove.clicked.connect(self._remove_styles)
        buttons = QVBoxLayout()
        buttons.addWidget(add)
        buttons.addWidget(remove)
        buttons.addStretch(1)
        style_row = QHBoxLayout()
        style_row.addWidget(self.styles, 1)
        style_row.addLayout(buttons)
        style_box = QWidget()
        style_box.setLayout(style_row)
        style_row.setContentsMargins(0, 0, 0, 0)

        self.preset = QComboBox()
        self.preset_help = QLabel()
        self.preset_help.setWordWrap(True)
        font = self.preset_help.font()
        font.setItalic(True)
        self.preset_help.setFont(font)

        self.selection_mode = QComboBox()
        for value, label in client.SELECTION_MODES:
            self.selection_mode.addItem(label, value)
        self.selection_mode.setToolTip(
            "Inside the selection: the whole layer goes to the engine with the selection as its "
            "mask (soft edges blend the style into the photo); the new layer covers the canvas. "
            "Only the selection's box: that part alone is painted, and the new layer is cut "
            "to the selection."
        )

        self.size = QSpinBox()
        self.size.setRange(client.MIN_SIZE, client.MAX_SIZE)
        self.size.setSuffix(" px")
        self._mode_changed()
        self.size.valueChanged.connect(self._size_changed)
        self.selection_mode.currentIndexChanged.connect(self._mode_changed)

        self.steps = QSpinBox()
        self.steps.setRange(1, 100000)
        self.steps.setToolTip("Optimisation steps over all scales: more is slower and smoother.")
        self.steps.valueChanged.connect(self._steps_changed)

        self.strength = QDoubleSpinBox()
        self.strength.setRange(*client.STYLE_STRENGTH)
        self.strength.setSingleStep(0.25)
        self.strength.setDecimals(2)
        self.strength.setValue(1.0)
        self.strength.setSuffix(" \u00d7")
        self.strength.setToolTip("Style weight relative to the preset's own (1 = as the preset).")

        self.preserve = QComboBox()
        for value, label in PRESERVE_LABELS:
            self.preserve.addItem(label, value)

        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setToolTip("Same seed and settings, same picture.")

        form = QFormLayout()
        form.addRow("Style image(s):", style_box)
        form.addRow("Preset:", self.preset)
        form.addRow("", self.preset_help)
        if selection_box is not None:
            form.addRow("Selection:", self.selection_mode)
        form.addRow("Output size:", self.size)
        form.addRow("Steps:", self.steps)
        form.addRow("Style strength:", self.strength)
        form.addRow("Keep colours:", self.preserve)
        form.addRow("Seed:", self.seed)

        box = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        box.button(QDialogButtonBox.Ok).setText("Stylise")
        box.accepted.connect(self.accept)
        box.rejected.connect(self.reject)
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #c0392b;")
        self.error.hide()

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(box)

        self._fill_presets()
        self.preset.currentIndexChanged.connect(self._preset_changed)
        self.restore(last or {})
        self._preset_changed()

    # -- presets ----------------------------------------------------------------------------

    def _fill_presets(self) -> None:
        """Ask the engine which presets exist; broken preset files are listed but disabled."""
        presets = client.list_presets(self.engine)
        for p in presets:
            self.preset.addItem(p["name"], p["name"])
            index = self.preset.count() - 1
            tip = p.get("error") or p.get("description") or ""
            self.preset.setItemData(index, tip, Qt.ToolTipRole)
            self.preset.setItemData(index, p.get("description") or "", Qt.UserRole + 1)
            if p.get("error"):
                self.preset.model().item(index).setEnabled(False)
        if not presets:
            raise client.EngineError("the engine lists no presets")
        # The engine's own default ("classic") first, not whatever sorts first.
        self.preset.setCurrentIndex(max(0, self.preset.findData(client.DEFAULT_PRESET)))

    def recipe(self) -> dict:
        name = self.preset.currentData()
        if name not in self._recipes:
            self._recipes[name] = client.preset_recipe(self.engine, name)
        return self._recipes[name]

    def _preset_changed(self, *_args) -> None:
        self.preset_help.setText(self.preset.currentData(Qt.UserRole + 1) or "")
        try:
            recipe = self.recipe()
        except client.EngineError as exc:
            self.show_error(str(exc))
            return
        if not self._steps_edited:
            self.steps.blockSignals(True)
            self.steps.setValue(sum(recipe.get("steps", [100])))
            self.steps.blockSignals(False)
        default = recipe.get("preserve_color", "none")
        self.preserve.setItemText(0, f"As the preset says ({default})")

    def _steps_changed(self, _value) -> None:
        self._steps_edited = True

    # -- the region -------------------------------------------------------------------------

    def _mode_changed(self, *_args) -> None:
        """The output size follows the region the mode paints, until the user sets one."""
        w, h = self.region_sizes[self.selection_mode.currentData()]
        if not self._size_edited:
            self.size.blockSignals(True)
            self.size.setValue(client.default_size(w, h))
            self.size.blockSignals(False)
        self.size.setToolTip(
            f"Long side the engine paints at. The region is {w} \u00d7 {h} px; "
            "a different size is scaled to fit it."
        )

    def _size_changed(self, _value) -> None:
        self._size_edited = True

    # -- style images -----------------------------------------------------------------------

    def _add_styles(self) -> None:
        start = os.path.dirname(self.style_paths()[-1]) if self.style_paths() else ""
        paths, _ = QFileDialog.getOpenFileNames(self, "Choose style images", start, IMAGE_FILTER)
        self.add_styles(paths)

    def add_styles(self, paths) -> None:
        present = set(self.style_paths())
        for path in paths:
            if path and path not in present:
                item = QListWidgetItem(os.path.basename(path))
                item.setData(Qt.UserRole, path)
                item.setToolTip(path)
                self.styles.addItem(item)
                present.add(path)

    def _remove_styles(self) -> None:
        for item in self.styles.selectedItems():
            self.styles.takeItem(self.styles.row(item))

    def style_paths(self) -> list:
        return [self.styles.item(i).data(Qt.UserRole) for i in range(self.styles.count())]

    # -- values -----------------------------------------------------------------------------

    def settings(self) -> client.StyleSettings:
        """The job the dialog describes; None wherever the preset's value stands."""
        recipe = self.recipe()
        steps = self.steps.value()
        return client.StyleSettings(
            styles=self.style_paths(),
            preset=self.preset.currentData(),
            size=self.size.value(),
            steps=None if steps == sum(recipe.get("steps", [])) else steps,
            style_strength=client.strength_setting(self.strength.value()),
            preserve_color=self.preserve.currentData(),
            seed=self.seed.value(),
            selection_mode=self.selection_mode.currentData(),
        )

    def values(self) -> dict:
        """What to remember for next time (not the size: that belongs to the layer)."""
        return {
            "styles": self.style_paths(),
            "preset": self.preset.currentData(),
            "strength": self.strength.value(),
            "preserve_color": self.preserve.currentData(),
            "seed": self.seed.value(),
            "selection_mode": self.selection_mode.currentData(),
        }

    def restore(self, values: dict) -> None:
        """Set the widgets from values() of an earlier run, or from the self-test's file."""
        if values.get("styles"):
            self.styles.clear()
            self.add_styles([p for p in values["styles"] if os.path.isfile(p)])
        index = self.preset.findData(values.get("preset"))
        if index >= 0:
            self.preset.setCurrentIndex(index)
        index = self.selection_mode.findData(values.get("selection_mode"))
        if index >= 0:  # before the size: the mode proposes one, a given size overrides it
            self.selection_mode.setCurrentIndex(index)
        if values.get("size"):
            self.size.setValue(int(values["size"]))
        if values.get("steps"):
            self.steps.setValue(int(values["steps"]))
        if values.get("strength"):
            self.strength.setValue(float(values["strength"]))
        index = self.preserve.findData(values.get("preserve_color"))
        if index >= 0:
            self.preserve.setCurrentIndex(index)
        if values.get("seed") is not None:
            self.seed.setValue(int(values["seed"]))

    def show_error(self, message: str) -> None:
        self.error.setText(message)
        self.error.show()

    def accept(self) -> None:
        """Check the job before closing, so a missing style image is fixed in place."""
        try:
            self.settings().check()
        except client.EngineError as exc:
            self.show_error(str(exc))
            return
        super().accept()


def load_last(text: str) -> dict:
    try:
        values = json.loads(text) if text else {}
    except ValueError:
        return {}
    return values if isinstance(values, dict) else {}
