"""Fashion instance segmentation (Fashionpedia): Mask R-CNN on the suite's backbone through mmdet, box and
mask AP by COCOeval. See :mod:`saip_bench.tasks.fashion.adapter`."""
