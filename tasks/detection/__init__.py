"""Pedestrian detection on CrowdHuman: odgt loader, a ViT simple-pyramid RetinaNet through mmdet, and the
official CrowdHuman metrics (AP@0.5, MR^-2, JI)."""
