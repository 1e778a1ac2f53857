"""Top-down human pose estimation: COCO-Keypoints (17) and COCO-WholeBody (133) through mmpose.

``data`` reads and writes the two COCO-style formats, ``meta`` holds the keypoint metadata (OKS sigmas, flip
pairs) read from mmpose's dataset files, ``transforms`` makes top-down crops with UDP, ``dataset`` feeds them
to torch, ``model`` builds the ViTPose-simple estimator, ``metrics`` runs COCOeval, and ``adapter`` is the
``saip evaluate`` entry point.
"""
