"""ddi-curate machine-learning core: blinding, LoRA training, calibration, fast inference.

Pure Python over plain data; never imports Django or ``annotations``. Import the submodules
(``modeling.training``, ``modeling.inference``...) directly; this package stays cheap to import.
"""
