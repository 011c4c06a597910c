"""nbgrader's settings for the fitlab course: this folder is the course directory.

Each exercise's source, solution included, is ``solutions/<exercise>/<exercise>.ipynb``;
``nbgrader generate_assignment <exercise>`` writes the student version to
``exercises/<exercise>/``, where students have always found it (``make assignments``
does the same and stores what it shows). The README's "For teachers" section walks
through releasing, collecting, autograding and feedback.
"""

from nbconvert.preprocessors import TagRemovePreprocessor
from nbgrader.converters import GenerateAssignment

c = get_config()  # noqa: F821  (nbgrader defines it when it reads this file)

c.CourseDirectory.course_id = "fitlab"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "exercises"

# A solution's discussion (what was slow, why integers) is left out of the student
# version: cells tagged `solution-only` are removed before nbgrader reads any cell.
c.GenerateAssignment.preprocessors = [
    TagRemovePreprocessor,
    *GenerateAssignment.preprocessors.default(),
]
c.TagRemovePreprocessor.enabled = True
c.TagRemovePreprocessor.remove_cell_tags = {"solution-only"}

# The checks train small models on the real CSVs: a cell may take a minute or more on a
# busy machine, where nbgrader's default gives it 30 s.
c.Execute.timeout = 600

# Students submit to the exchange, nbgrader's shared folder (default /srv/nbgrader/exchange,
# writable by every student); to put it elsewhere:
# c.Exchange.root = "/srv/nbgrader/exchange"
