"""Where ``LivePlot`` shows itself: widgets in a Jupyter kernel, text lines elsewhere.

:func:`choose_mode` decides. An IPython *kernel* (ipykernel: JupyterLab,
Notebook, VS Code, but also nbval and ``nbconvert --execute``, which cannot be
told apart from a live front end) gets widgets; every other process gets text.
Set ``FITLAB_LIVE=text`` (or ``widgets``) to force a mode.

:class:`WidgetView` is the widget front end: a status line, a progress bar and
the figure as a PNG, in one output that is only ever updated in place. When
training ends the widgets hide, and the run's record is left as plain outputs
below them: the final figure as an image, the final status line as a printed
line. So the notebook reads the same in JupyterLab and wherever widgets are
not drawn:

* an HTML export (``jupyter nbconvert --to html``). Saved without widget
  state, a widget output shows its ``text/plain``: empty here. Saved with it
  (nbclient keeps it), the export embeds the widget view, which the widget
  manager's JavaScript (from a CDN) draws hidden, and offline not at all.
  Either way the figure and the status line are the plain outputs below it.
* strict nbval, which compares outputs as they were first sent. It ignores
  ``update_display_data`` and does not understand ``clear_output``, so
  neither is used; it skips the widget mime type and ``image/png``, and the
  ``text/plain`` of the widget and of the image is fixed. Only the status line
  changes from run to run (elapsed time, images/s): a notebook compared
  strictly masks those numbers with a sanitizer, or tags its training cells
  ``nbval-ignore-output`` as the workbook does.

The widgets are hidden, not closed: a notebook saved with its widget state
then reopens with nothing where they were, not "model not found".

Examples
--------
>>> choose_mode("text")
'text'
"""

from __future__ import annotations

import html
import os

from fitlab.plots import kernel_shell

#: Environment variable that forces the display mode: ``widgets``, ``text`` or ``auto``.
MODE_ENV = "FITLAB_LIVE"


def choose_mode(setting: str | None = None) -> str:
    """``"widgets"`` in a Jupyter kernel that has ipywidgets, else ``"text"``.

    Parameters
    ----------
    setting : {"auto", "widgets", "text"}, optional
        Defaults to ``$FITLAB_LIVE`` (``auto`` when unset). ``widgets`` gives
        widgets outside a kernel too: they are made and updated, nothing is
        displayed.

    Examples
    --------
    >>> choose_mode("auto")  # a doctest runs in no kernel
    'text'
    >>> choose_mode("browser")
    Traceback (most recent call last):
    ...
    ValueError: FITLAB_LIVE='browser': use 'widgets', 'text' or 'auto'
    """
    if setting is None:
        setting = os.environ.get(MODE_ENV, "auto")
    forced = setting.strip().lower()
    if forced not in ("", "auto", "widgets", "text"):
        raise ValueError(f"{MODE_ENV}={forced!r}: use 'widgets', 'text' or 'auto'")
    if forced == "text" or (forced != "widgets" and kernel_shell() is None):
        return "text"
    try:  # now, not inside fit: the import takes a while
        import ipywidgets  # noqa: F401
    except ImportError as error:
        if forced == "widgets":
            raise ImportError(
                f"{MODE_ENV}=widgets needs ipywidgets: pip install ipywidgets"
            ) from error
        return "text"  # a kernel without ipywidgets still gets text progress
    return "widgets"


class WidgetView:
    """Status line + progress bar + image, in one output that is only ever updated in place.

    Made, it displays itself when it runs in a kernel (with an empty
    ``text/plain``, so a viewer that cannot draw widgets shows nothing there);
    elsewhere the widgets are made and updated, and nothing is displayed.

    Parameters
    ----------
    size : (int, int)
        The image's width and height in pixels.
    png : bytes
        The first image.

    Attributes
    ----------
    status, progress, image : ipywidgets.HTML, ipywidgets.FloatProgress, ipywidgets.Image
        The three widgets (CSS classes ``fitlab-live-status`` and
        ``fitlab-live-image``).
    box : ipywidgets.VBox
        What is displayed (CSS class ``fitlab-live``): the progress bar and the
        status line in a row, the image below.

    Examples
    --------
    >>> view = WidgetView(size=(200, 100), png=b"")
    >>> view.set_status("epoch 1 / 3", 0.25)
    >>> view.progress.value, "epoch 1 / 3" in view.status.value
    (0.25, True)
    >>> view.finish(png=None, status=None)  # no epoch ended: nothing to leave behind
    >>> view.box.layout.display, view.image.comm is None
    ('none', True)
    """

    def __init__(self, size: tuple[int, int], png: bytes):
        import ipywidgets as widgets

        self.status = widgets.HTML(value=_status_html("starting…"))
        self.progress = widgets.FloatProgress(
            value=0.0, min=0.0, max=1.0, layout=widgets.Layout(width="180px")
        )
        # A fixed layout size: otherwise the front end stretches the PNG to the cell width.
        self.image = widgets.Image(value=png, format="png", layout=self._layout(size))
        self.image.add_class("fitlab-live-image")
        self.status.add_class("fitlab-live-status")
        self.box = widgets.VBox([widgets.HBox([self.progress, self.status]), self.image])
        self.box.add_class("fitlab-live")
        if kernel_shell() is not None:
            from IPython.display import display

            # Fixed text/plain (the widget's repr would embed its state, which changes per
            # run), and empty: where widgets are not drawn, the plain record says it all.
            bundle = self.box._repr_mimebundle_()
            bundle["text/plain"] = ""
            display(bundle, raw=True)

    @staticmethod
    def _layout(size: tuple[int, int]):
        import ipywidgets as widgets

        return widgets.Layout(width=f"{size[0]}px", height=f"{size[1]}px")

    def show(self, png: bytes, size: tuple[int, int]) -> None:
        """Replace the image (and its size, when the figure's changed)."""
        if self.image.layout.width != f"{size[0]}px":
            self.image.layout = self._layout(size)
        self.image.value = png

    def set_status(self, text: str, fraction: float | None) -> None:
        """Set the status line; move the progress bar to ``fraction`` (0 to 1) unless None."""
        self.status.value = _status_html(text)
        if fraction is not None:
            self.progress.value = min(max(fraction, 0.0), 1.0)

    def finish(self, png: bytes | None, status: str | None) -> None:
        """Hide the widgets; leave the final figure and status line as plain outputs below.

        Each is left only when given. In a kernel the figure is displayed as
        an image and the status line printed; elsewhere nothing is shown.
        """
        self.box.layout.display = "none"
        self.box.children = self.box.children[:1]
        # nbclient saves a closed widget's last state with the notebook: no second copy of the PNG
        self.image.value = b""
        self.image.close()
        if kernel_shell() is None:
            return
        if png is not None:
            from IPython.display import Image, display

            display(Image(data=png, format="png"))
        if status is not None:
            print(status, flush=True)


def _status_html(text: str) -> str:
    return f'<span style="font-family: monospace; white-space: pre">{html.escape(text)}</span>'
