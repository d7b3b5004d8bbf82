"""kubesvc.client"""
